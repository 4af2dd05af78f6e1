// Shared helpers of the test suite (not a test file: ava runs build/__test__/**/*.test.js only).
import type { ExecutionContext } from 'ava'
import { Hamt, type HamtErrorCode, type HamtStats, type Key } from 'concurrent-hamt'
import * as path from 'node:path'
import * as v8 from 'node:v8'
import { isDeepStrictEqual } from 'node:util'
import { Worker } from 'node:worker_threads'

/** A value of a type the public API does not accept, for the tests of bad input. */
export function unchecked<T>(x: unknown): T {
  return x as T
}

type ErrorClass = TypeErrorConstructor | RangeErrorConstructor | ErrorConstructor

/** The `code` of a thrown value, if it has one. */
export function codeOf(e: unknown): unknown {
  return typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined
}

/**
 * Asserts that `fn` throws an error of exactly the class `cls` (an `Error` that is neither a
 * `TypeError` nor a `RangeError` when `cls` is `Error`) with `code`, whose message contains
 * every one of `parts`. Returns the error.
 */
export function throwsHamt(
  t: ExecutionContext,
  fn: () => unknown,
  cls: ErrorClass,
  code: HamtErrorCode,
  ...parts: string[]
): Error {
  const e = t.throws(fn, { instanceOf: cls, code })
  t.is(Object.getPrototypeOf(e), cls.prototype, `expected exactly a ${cls.name}, got a ${e.name}`)
  for (const part of parts) {
    t.true(e.message.includes(part), `the message ${JSON.stringify(e.message)} should contain ${JSON.stringify(part)}`)
  }
  return e
}

/** The bytes of a byte array as a hexadecimal string. */
export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/**
 * The key as a JS `Map` key with the same equality as the Hamt's: primitives as they are
 * (Map's SameValueZero is the Hamt's), byte arrays as a symbol named by their content.
 */
export function canon(k: Key): unknown {
  return k instanceof Uint8Array ? Symbol.for(`bytes:${hex(k)}`) : k
}

/** How the binding stores a value (what `compareAndSet` compares). */
export function storedKind(v: unknown): string {
  if (v instanceof Uint8Array) {
    return Object.getPrototypeOf(v) === Buffer.prototype ? 'buffer' : 'bytes'
  }
  if (v === null) {
    return 'null'
  }
  const t = typeof v
  return t === 'object' || t === 'function' ? 'serialized' : t
}

/** Whether two values have the same stored form (the equality of `compareAndSet`). */
export function sameStored(a: unknown, b: unknown): boolean {
  const ka = storedKind(a)
  if (ka !== storedKind(b)) {
    return false
  }
  switch (ka) {
    case 'number':
      return Object.is(a, b) // every NaN is one, 0 and -0 differ
    case 'bytes':
    case 'buffer':
      return hex(a as Uint8Array) === hex(b as Uint8Array)
    case 'serialized':
      return Buffer.compare(v8.serialize(a), v8.serialize(b)) === 0
    default:
      return a === b
  }
}

/** Deep equality as the tests mean it: `Object.is` for numbers, prototypes compared (a Buffer is not a Uint8Array). */
export function same(a: unknown, b: unknown): boolean {
  return isDeepStrictEqual(a, b)
}

/** A short description of a value for failure messages (bigints, symbols and byte arrays included). */
export function show(v: unknown): string {
  if (typeof v === 'bigint') {
    return `${v}n`
  }
  if (typeof v === 'symbol') {
    return v.toString()
  }
  if (typeof v === 'number') {
    return Object.is(v, -0) ? '-0' : String(v)
  }
  if (typeof v === 'string') {
    return JSON.stringify(v)
  }
  if (v instanceof Uint8Array) {
    return `${Object.getPrototypeOf(v) === Buffer.prototype ? 'Buffer' : 'Uint8Array'}<${hex(v)}>`
  }
  if (v === undefined) {
    return 'undefined'
  }
  try {
    return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v)
  } catch {
    return Object.prototype.toString.call(v)
  }
}

/** The path of a compiled worker script of __test__/workers. */
export function workerPath(name: string): string {
  return path.join(__dirname, 'workers', `${name}.js`)
}

export interface WorkerRun<T> {
  /** The messages the worker posted, in order. */
  readonly messages: T[]
  readonly exitCode: number
}

/**
 * Runs __test__/workers/`name`.js with `workerData` until it exits; rejects with the worker's
 * error if it throws. Messages are typed by the caller (the worker's protocol).
 */
export function runWorker<T>(name: string, workerData: unknown): Promise<WorkerRun<T>> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerPath(name), { workerData })
    const messages: T[] = []
    let error: unknown
    w.on('message', (m: unknown) => messages.push(m as T))
    w.on('error', (e: unknown) => {
      error = e
    })
    w.on('exit', (exitCode) => {
      if (error !== undefined) {
        reject(error instanceof Error ? error : new Error(String(error)))
      } else {
        resolve({ messages, exitCode })
      }
    })
  })
}

/** The single result message of a worker that posts one. */
export async function workerResult<T>(name: string, workerData: unknown): Promise<T> {
  const run = await runWorker<T>(name, workerData)
  if (run.exitCode !== 0 || run.messages.length !== 1) {
    throw new Error(`worker ${name} exited with ${run.exitCode} after ${run.messages.length} messages`)
  }
  return run.messages[0] as T
}

export function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** `global.gc`, which the suite runs with (--expose-gc in package.json's ava config). */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (typeof g !== 'function') {
    throw new Error('run the tests with --expose-gc')
  }
  g()
}

/**
 * Collects garbage and lets finalizers run (N-API finalizers may be deferred to a later turn
 * of the event loop), up to `rounds` times, until `done()` holds. Returns whether it did: the
 * caller asserts on it (a deadline on progress, not on time).
 */
export async function collectUntil(done: () => boolean, rounds = 50): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    if (done()) {
      return true
    }
    gc()
    await turn()
    await turn()
    if (i > 10) {
      await sleep(5)
    }
  }
  return done()
}

/** Polls `done()` once per event-loop turn (and a little sleep) for up to `rounds` tries. */
export async function until(done: () => boolean, rounds = 2000): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    if (done()) {
      return true
    }
    await sleep(i < 20 ? 0 : 2)
  }
  return done()
}

/** The exact size of a snapshot of `h` taken now (the snapshot is closed again). */
export function snapshotSize(h: { snapshot(): { readonly size: number; close(): void } }): number {
  const s = h.snapshot()
  try {
    return s.size
  } finally {
    s.close()
  }
}

export function stats(): HamtStats {
  return Hamt.stats()
}

/** A deterministic pseudo-random generator (mulberry32), for the tests that pick random points. */
export function random(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** The seed for a test's pseudo-random choices: FC_SEED / TEST_SEED if given, else the time. */
export function seedFromEnv(name = 'TEST_SEED'): number {
  const s = process.env[name]
  return s !== undefined && s !== '' ? Number(s) : Date.now() % 2147483647
}
