// What big.ts and extreme.test.ts share: the task, the result, and digests of big keys and values.
import type { Key } from 'concurrent-hamt'
import { createHash } from 'node:crypto'
import type { Shared } from '../../workers/protocol'

export interface BigTask {
  readonly map: Shared
  /** The keys to read (big values), and big keys to look up, with what each must hold. */
  readonly keys: readonly Key[]
}

export interface BigSeen {
  readonly digests: (string | null)[]
  readonly lengths: number[]
  /** Big keys as iteration gave them back (digest of the key). */
  readonly iteratedKeyDigests: string[]
}

export function digest(v: unknown): string | null {
  const hash = createHash('sha256')
  if (typeof v === 'string') {
    hash.update(v, 'utf16le')
  } else if (v instanceof Uint8Array) {
    hash.update(v)
  } else if (typeof v === 'object' && v !== null && (v as { blob?: unknown }).blob instanceof Uint8Array) {
    hash.update((v as { blob: Uint8Array }).blob)
  } else {
    return null
  }
  return hash.digest('hex')
}
