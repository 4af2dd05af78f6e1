/// <reference lib="esnext.disposable" preserve="true" />
/**
 * concurrent-hamt: a lock-free concurrent map that several JavaScript threads read and write
 * at once, with no copying through `postMessage`, no locks and no server.
 *
 * The map is native (a concurrent hash array mapped trie in Rust, with O(1) snapshots); this
 * module is the typed layer over its binding. It adds only what Node-API cannot do: structured
 * clone through `v8.serialize`, iterators, `Symbol.dispose`, and these types.
 *
 * ```ts
 * import { Hamt } from 'concurrent-hamt'
 * import { Worker } from 'node:worker_threads'
 *
 * const counts = new Hamt<string, number>()
 * new Worker('./count.js', { workerData: counts.share() })
 * // in count.js: const counts = Hamt.attach(workerData); counts.increment('words')
 * ```
 *
 * @packageDocumentation
 */
import v8 = require('v8')
import {
  configure,
  mapAttach,
  mapClear,
  mapClose,
  mapClosed,
  mapCompareAndSet,
  mapCreate,
  mapCursor,
  mapDelete,
  mapGet,
  mapGetMany,
  mapHas,
  mapIncrement,
  mapSet,
  mapSetIfAbsent,
  mapSetMany,
  mapSize,
  mapSnapshot,
  mapSwap,
  mapToken,
  mapUpdate,
  stats,
  type NativeCursor,
} from '#binding'

/**
 * How many native calls failed without being able to throw (crates/node/src/env.rs): while a
 * worker is being terminated, Node-API refuses both to run JavaScript (structured clone,
 * `update` functions) and to throw, so such a call returns as if it had worked. The binding
 * counts it here, and {@link checked} throws in its place, so that the caller's next
 * statements (which V8 may still run before it stops the thread) do not act on a write that
 * did not happen.
 */
const refusals = new Int32Array(new ArrayBuffer(4))
configure(v8.serialize, v8.deserialize, refusals.buffer)

/** `result`, unless the call that gave it failed and could not throw (see {@link refusals}). */
function checked<T>(result: T): T {
  if (refusals[0] !== 0) {
    refusals[0] = 0
    throw Object.assign(new Error('Node-API could not run JavaScript: the environment is shutting down'), { code: 'ERR_HAMT_NAPI' })
  }
  return result
}

// Node 18.18+ and 20.4+ define Symbol.dispose; older versions get the usual stand-in, so that
// `[Symbol.dispose]()` below has a real symbol for its name (TypeScript's `using` looks it up
// the same way).
if (typeof Symbol.dispose !== 'symbol') {
  Object.defineProperty(Symbol, 'dispose', { value: Symbol('Symbol.dispose') })
}

/**
 * What a key may be. Keys compare as `Map` compares them (SameValueZero): `-0` is `0`, `NaN`
 * is one key, and `1`, `1n`, `"1"` and `true` are four different keys. Strings compare by
 * their UTF-16 code units (lone surrogates included). A `Uint8Array` (or `Buffer`) key compares
 * by its bytes, not by identity, and is copied: later changes to the array do not change the
 * key, and iteration gives the key back as a new `Uint8Array`.
 */
export type Key = string | number | bigint | boolean | Uint8Array

/**
 * A plain, structured-cloneable token that names a map: pass it through `workerData` or
 * `postMessage`, and call {@link Hamt.attach} on the other side. It holds no reference: keep a
 * handle open until the receiver has attached, or the map may be gone (an error, never a crash).
 */
export interface HamtHandle {
  readonly kind: 'concurrent-hamt'
  /** 32 hexadecimal digits: 128 random bits, unguessable. */
  readonly token: string
}

/** Process-wide statistics of the native side, from {@link Hamt.stats}. */
export interface HamtStats {
  /** Native maps alive in the process (each has at least one open handle). */
  readonly maps: number
  /** Open handles in the process, in every thread. */
  readonly handles: number
  /** Trie nodes unlinked by writers and not yet freed (held back by hazard pointers or batching). */
  readonly unfreedNodes: number
  /** Trie nodes unlinked so far, over the maps alive. */
  readonly retiredNodes: number
  /** Hazard records allocated in the process (a pool: reused, never freed). */
  readonly hazardRecords: number
  /** Of those, records held by a live thread. */
  readonly hazardRecordsInUse: number
  /**
   * Bytes that the live handles report to V8 (`napi_adjust_external_memory`) as the native
   * memory they keep alive, so that garbage collection weighs a small handle on a big map by
   * the map: each handle reports an estimate of its whole map. Summed over every thread.
   */
  readonly reportedMemory: number
}

/**
 * An error of this package: a `TypeError`, `RangeError` or `Error` with one of these codes.
 * (Besides these, a call made while its worker is being terminated may throw an `Error` with
 * code `ERR_HAMT_NAPI` when it can no longer run JavaScript, e.g. to copy a value by
 * structured clone; such a call may or may not have written (it fails before its write when
 * copying the value in, after it when copying a result out), and the worker stops right
 * after.)
 */
export type HamtErrorCode =
  | 'ERR_HAMT_INVALID_KEY'
  | 'ERR_HAMT_INVALID_VALUE'
  | 'ERR_HAMT_INVALID_DELTA'
  | 'ERR_HAMT_NOT_A_COUNTER'
  | 'ERR_HAMT_INVALID_ARGUMENT'
  | 'ERR_HAMT_INVALID_TOKEN'
  | 'ERR_HAMT_STALE_TOKEN'
  | 'ERR_HAMT_CLOSED'
  | 'ERR_HAMT_REENTRANT'

const enum Mode {
  Entries = 0,
  Keys = 1,
  Values = 2,
}

/** Entries fetched from native code per call while iterating. */
const BATCH = 256

function typeError(code: HamtErrorCode, message: string, cause?: unknown): TypeError {
  const e = Object.assign(new TypeError(message), { code })
  if (cause !== undefined) {
    Object.defineProperty(e, 'cause', { value: cause, writable: true, configurable: true })
  }
  return e
}

const notAToken = 'Hamt.attach: handle must be what share() returned (or a Hamt, or a Hamt received through postMessage)'

/** The token inside a handle, a `Hamt`, or a `Hamt` that went through structured clone. */
function tokenOf(handle: unknown): string {
  let token: unknown
  try {
    let h = handle
    if (typeof h === 'object' && h !== null && !('token' in h) && 'handle' in h) {
      h = (h as { handle: unknown }).handle
    }
    if (typeof h === 'object' && h !== null && (h as { kind?: unknown }).kind === 'concurrent-hamt') {
      token = (h as { token?: unknown }).token
    }
  } catch (e) {
    // A revoked proxy, a throwing getter: not a token.
    throw typeError('ERR_HAMT_INVALID_TOKEN', notAToken, e)
  }
  if (typeof token !== 'string') {
    throw typeError('ERR_HAMT_INVALID_TOKEN', notAToken)
  }
  return token
}

/** Set by {@link wrap} for the constructor to adopt, so that every `Hamt` has one shape. */
let adopting: object | undefined

function wrap<K extends Key, V>(native: object): Hamt<K, V> {
  adopting = native
  try {
    return new Hamt<K, V>()
  } finally {
    adopting = undefined
  }
}

/**
 * An iterator over a snapshot, fetching entries from native code in batches. A class rather
 * than a generator, so that `return()` releases the snapshot even before the first `next()`.
 */
class SnapshotIterator<T> implements IterableIterator<T> {
  private cursor: NativeCursor | undefined
  private batch: unknown[] = []
  private at = 0
  private last = false

  constructor(
    cursor: NativeCursor,
    private readonly mode: Mode,
    private readonly step: number,
    private readonly make: (batch: unknown[], i: number) => T,
  ) {
    this.cursor = cursor
  }

  next(): IteratorResult<T, undefined> {
    if (this.at >= this.batch.length) {
      if (this.last || this.cursor === undefined) {
        this.close()
        return { done: true, value: undefined }
      }
      this.batch = checked(this.cursor.next(BATCH, this.mode))
      this.at = 0
      this.last = this.batch.length < BATCH * this.step
      if (this.batch.length === 0) {
        this.close()
        return { done: true, value: undefined }
      }
    }
    const value = this.make(this.batch, this.at)
    this.at += this.step
    return { done: false, value }
  }

  /** Ends the iteration and releases the snapshot (`break` and `return` in `for...of` call it). */
  return(): IteratorResult<T, undefined> {
    this.close()
    return { done: true, value: undefined }
  }

  [Symbol.iterator](): this {
    return this
  }

  private close(): void {
    this.batch = []
    this.at = 0
    if (this.cursor !== undefined) {
      this.cursor.close()
      this.cursor = undefined
    }
  }
}

/**
 * A concurrent map shared by threads: every handle on it, in any thread, sees the same
 * entries. Its methods follow `Map`'s where `Map` has them.
 *
 * - **Sharing**: {@link share} gives a token for `workerData`/`postMessage`;
 *   {@link Hamt.attach} in the receiving thread gives a new handle on the same map. A `Hamt`
 *   sent as it is arrives as a plain object that `attach` also accepts.
 * - **Values** are copied in and out, as `v8.serialize` copies them (structured clone without
 *   transferables): reading gives a new copy, and changing it does not change the map. Strings,
 *   numbers, bigints, booleans, `null`, `undefined` and byte arrays take a fast native path.
 *   Functions, symbols and `SharedArrayBuffer`s cannot be stored (a `TypeError`).
 * - **Atomicity**: each method is one atomic step (linearizable), except {@link getMany} and
 *   {@link setMany}, which act key by key.
 * - **Iteration** (`keys`, `values`, `entries`, `forEach`, `for...of`) walks a snapshot taken
 *   when it starts (in O(1)): every entry present at that instant, once, whatever other
 *   threads do meanwhile. The order is the trie's (by hash), not insertion order.
 * - **Lifetime**: each handle holds the map alive until {@link close} (or `using`, or garbage
 *   collection, or its thread's exit); the map is freed when its last handle goes.
 *
 * @typeParam K - the keys' type (see {@link Key})
 * @typeParam V - the values' type
 */
export class Hamt<K extends Key = Key, V = unknown> implements Iterable<[K, V]> {
  /**
   * The native handle: an opaque value that every binding function takes first (not
   * enumerable, so that structured clone leaves it out).
   */
  private declare readonly native: object

  /**
   * The map's token, as {@link share} returns it. It is the only enumerable property, so a
   * `Hamt` sent through `postMessage` arrives as `{ handle }`, which {@link Hamt.attach} accepts.
   */
  readonly handle: HamtHandle

  /**
   * A new, empty map, filled with `entries` if given (in order, as {@link setMany} does).
   *
   * The key type is not inferred from `entries` (it would be the literal keys given, not
   * `string`): write `new Hamt<string, number>(entries)`, or get `Hamt<Key, V>`.
   * @throws TypeError - for an entry whose key or value cannot be stored
   */
  constructor(entries?: Iterable<readonly [NoInfer<K>, V]> | null) {
    const native = adopting !== undefined ? adopting : mapCreate()
    adopting = undefined
    Object.defineProperty(this, 'native', { value: native })
    this.handle = Object.freeze({ kind: 'concurrent-hamt' as const, token: mapToken(native) })
    if (entries !== undefined && entries !== null) {
      this.setMany(entries)
    }
  }

  /**
   * A new handle, in this thread, on the map that `handle` names.
   * @param handle - what {@link share} returned (in this thread or another), a `Hamt`, or a
   *   `Hamt` received through `postMessage`
   * @throws TypeError `ERR_HAMT_INVALID_TOKEN` - if `handle` is not a token
   * @throws Error `ERR_HAMT_STALE_TOKEN` - if no handle on that map is left (the sender closed
   *   or lost its handles before this call)
   */
  static attach<K extends Key = Key, V = unknown>(
    handle: HamtHandle | Hamt<K, V> | { readonly handle: HamtHandle },
  ): Hamt<K, V> {
    return wrap<K, V>(mapAttach(tokenOf(handle)))
  }

  /** Statistics of the native side, for the whole process (every map, every thread). */
  static stats(): HamtStats {
    return stats()
  }

  /** The value stored for `key`, or `undefined` (a copy: changing it does not change the map). */
  get(key: K): V | undefined {
    return checked(mapGet(this.native, key)) as V | undefined
  }

  /** Stores `value` for `key` (`undefined` included, as `Map` does). */
  set(key: K, value: V): this {
    checked(mapSet(this.native, key, value))
    return this
  }

  /** Whether `key` has an entry (one that stores `undefined` included). */
  has(key: K): boolean {
    return mapHas(this.native, key)
  }

  /** Removes `key`; returns whether it had an entry. */
  delete(key: K): boolean {
    return mapDelete(this.native, key)
  }

  /** Removes every entry, atomically: a snapshot taken at any time sees all of them or none. */
  clear(): void {
    mapClear(this.native)
  }

  /**
   * The number of entries, in O(1). Exact whenever no write is in flight; while other threads
   * write, it may lag them (`snapshot().size` is exact at its instant).
   */
  get size(): number {
    return mapSize(this.native)
  }

  /** Whether this handle is closed (see {@link close}). */
  get closed(): boolean {
    return mapClosed(this.native)
  }

  /** Stores `value` only if `key` has no entry; returns whether it did. */
  setIfAbsent(key: K, value: V): boolean {
    return checked(mapSetIfAbsent(this.native, key, value))
  }

  /** Stores `value` for `key`; returns the value it replaced (`undefined` if none). */
  swap(key: K, value: V): V | undefined {
    return checked(mapSwap(this.native, key, value)) as V | undefined
  }

  /**
   * Replaces the value of `key` with `value` only if it is `expected`, atomically; returns
   * whether it did.
   *
   * - `expected` `undefined` means "no entry" (an entry that stores `undefined` is an entry).
   * - `value` `undefined` means "delete the entry".
   * - Values compare by their stored, serialized form: numbers by their bits (`0` and `-0`
   *   differ, every `NaN` is the same), objects by their `v8.serialize` bytes (in a normal
   *   form, so that a value read with `get` compares equal to what is stored), so two equal
   *   objects whose properties were added in a different order differ.
   */
  compareAndSet(key: K, expected: V | undefined, value: V | undefined): boolean {
    return checked(mapCompareAndSet(this.native, key, expected, value))
  }

  /**
   * Atomically replaces the value of `key` with `fn(current)` (`current` is `undefined` when
   * there is no entry); a result of `undefined` deletes the entry. Returns the new value.
   *
   * Under contention `fn` may run more than once (when another thread changes the entry
   * between the read and the write, or takes a snapshot, `fn` runs again on the current value,
   * and only its last result is stored): keep it free of side effects. If `fn` throws, nothing
   * is written and the error propagates. `fn` may read this map, but not write it or take a
   * snapshot of it (iteration included): that would restart the update forever, so it throws
   * `ERR_HAMT_REENTRANT`.
   */
  update(key: K, fn: (current: V | undefined) => V | undefined): V | undefined {
    return checked(mapUpdate(this.native, key, fn as (current: unknown) => unknown)) as V | undefined
  }

  /**
   * Atomically adds `delta` (default 1) to the number stored for `key` (no entry counts as 0);
   * returns the new value. Numbers add to numbers, bigints to bigints.
   * @throws TypeError `ERR_HAMT_NOT_A_COUNTER` - if the value stored is not of the delta's kind
   * @throws TypeError `ERR_HAMT_INVALID_DELTA` - if `delta` is not a number or a bigint
   * @throws RangeError `ERR_HAMT_INVALID_DELTA` - if `delta` is `NaN` or infinite
   */
  increment(key: K, delta?: number): number
  increment(key: K, delta: bigint): bigint
  increment(key: K, delta?: number | bigint): number | bigint
  increment(key: K, delta?: number | bigint): number | bigint {
    return checked(mapIncrement(this.native, key, delta))
  }

  /** `get` for each key, in order; not atomic as a whole. */
  getMany(keys: readonly K[]): (V | undefined)[] {
    return checked(mapGetMany(this.native, keys)) as (V | undefined)[]
  }

  /**
   * `set` for each entry, in order; not atomic as a whole. A `TypeError` met while iterating
   * `entries` becomes `ERR_HAMT_INVALID_ARGUMENT` (the original is its `cause`); any other
   * error thrown by the iterable's own code propagates as it is.
   */
  setMany(entries: Iterable<readonly [K, V]>): this {
    let list: readonly (readonly [K, V])[]
    try {
      if (Array.isArray(entries)) {
        list = entries
      } else if (entries !== null && typeof entries === 'object' && typeof (entries as Iterable<unknown>)[Symbol.iterator] === 'function') {
        list = Array.from(entries)
      } else {
        throw typeError('ERR_HAMT_INVALID_ARGUMENT', 'Hamt.setMany: entries must be an iterable of [key, value] entries')
      }
    } catch (e) {
      if (e instanceof TypeError && !('code' in e)) {
        // The engine's TypeError about the argument (a revoked proxy, a view of a detached
        // buffer; or a TypeError thrown by the iterable's own code): given our code, with the
        // original as its `cause`. Other errors propagate as they are.
        throw typeError('ERR_HAMT_INVALID_ARGUMENT', `Hamt.setMany: entries cannot be iterated (${e.message})`, e)
      }
      throw e
    }
    checked(mapSetMany(this.native, list))
    return this
  }

  /**
   * An independent, writable copy of the map, in O(1) whatever its size: later writes to
   * either do not show in the other. Its `size` is exact. It is a new map, with its own token.
   */
  snapshot(): Hamt<K, V> {
    return wrap<K, V>(mapSnapshot(this.native))
  }

  /**
   * A token for another thread's {@link Hamt.attach} (see {@link HamtHandle}).
   * @throws Error `ERR_HAMT_CLOSED` - if this handle is closed (its token may name nothing)
   */
  share(): HamtHandle {
    void mapToken(this.native) // throws ERR_HAMT_CLOSED on a closed handle
    return this.handle
  }

  /** The keys of a snapshot taken now (see the class's notes on iteration). */
  keys(): IterableIterator<K> {
    return new SnapshotIterator(mapCursor(this.native), Mode.Keys, 1, (b, i) => b[i] as K)
  }

  /** The values of a snapshot taken now. */
  values(): IterableIterator<V> {
    return new SnapshotIterator(mapCursor(this.native), Mode.Values, 1, (b, i) => b[i] as V)
  }

  /** The `[key, value]` entries of a snapshot taken now. */
  entries(): IterableIterator<[K, V]> {
    return new SnapshotIterator(mapCursor(this.native), Mode.Entries, 2, (b, i): [K, V] => [b[i] as K, b[i + 1] as V])
  }

  /** The `[key, value]` entries of a snapshot taken now. */
  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries()
  }

  /** Calls `fn(value, key, map)` for each entry of a snapshot taken now. */
  forEach(fn: (value: V, key: K, map: Hamt<K, V>) => void, thisArg?: unknown): void {
    if (typeof fn !== 'function') {
      throw typeError('ERR_HAMT_INVALID_ARGUMENT', 'Hamt.forEach: fn must be a function')
    }
    for (const [k, v] of this.entries()) {
      fn.call(thisArg, v, k, this)
    }
  }

  /**
   * Releases this handle (idempotent): later calls on it throw `ERR_HAMT_CLOSED`. The map
   * lives on while other handles (in any thread) or snapshots' iterators hold it.
   */
  close(): void {
    mapClose(this.native)
  }

  /** {@link close}, for `using`. */
  [Symbol.dispose](): void {
    mapClose(this.native)
  }

  get [Symbol.toStringTag](): string {
    return 'Hamt'
  }
}
