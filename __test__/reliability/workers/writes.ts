// What the writers of terminate-writes.test.ts write: one key per write, its value a function
// of (worker, write), of every kind the binding stores (strings, records, bytes, bigints,
// numbers, Maps and Dates through structured clone).
import type { Key } from 'concurrent-hamt'
import type { Shared } from '../../workers/protocol'

export interface WriterTask {
  readonly map: Shared
  readonly id: number
  /** Per worker, three slots: writes done, shared increments done, iterators left open. */
  readonly progress: SharedArrayBuffer
}

export function writerKey(id: number, i: number): Key {
  switch (i % 4) {
    case 0:
      return `w${id}:${i}`
    case 1:
      return id * 1_000_000_000 + i
    case 2:
      return BigInt(id) * 2n ** 70n + BigInt(i)
    default:
      return new Uint8Array([0xee, id, i & 0xff, (i >>> 8) & 0xff, (i >>> 16) & 0xff, (i >>> 24) & 0xff])
  }
}

/** The value write `i` of worker `id` stores (case 5 is an increment from absent: the delta). */
export function expected(id: number, i: number): unknown {
  switch (i % 8) {
    case 0:
      return `${id}:${i}`
    case 1:
      return { id, i, tags: ['a', i % 7], nested: { sq: i * i } }
    case 2:
      return new Uint8Array([id, i & 0xff, (i >>> 8) & 0xff, 7])
    case 3:
      return BigInt(id) * 2n ** 64n + BigInt(i)
    case 4:
      return { id, i, via: 'update' }
    case 5:
      return i + 1
    case 6:
      return new Map<string, number>([['id', id], ['i', i]])
    default:
      return new Date(id * 1e9 + i)
  }
}

/** The value write `i` of a cloned-writer (workers/cloned-writer.ts) stores. */
export function clonedValue(i: number): unknown {
  return { i, at: new Date(i), tags: new Map([['i', i]]) }
}
