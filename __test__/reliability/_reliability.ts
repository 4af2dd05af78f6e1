// Shared pieces of the reliability checks (not a test file: ava runs *.test.js only).
//
// Sizes: every check has a quick size (the default: `npm test` and CI run it, about a minute
// for the whole folder) and a full size, chosen by one environment variable:
//
//   HAMT_RELIABILITY=full npx ava build/__test__/reliability/   (scripts/reliability-node.sh does this)
//
// Figures: each check logs what it measured with t.log; when HAMT_RELIABILITY_REPORT names a
// file, it also appends one JSON line per check there (the script prints them as a table).
import type { ExecutionContext } from 'ava'
import { Hamt, type HamtErrorCode, type HamtStats } from 'concurrent-hamt'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Worker } from 'node:worker_threads'
import { gc, sleep, turn } from '../_helpers'

/** Whether the long versions run (HAMT_RELIABILITY=full). */
export const FULL = process.env['HAMT_RELIABILITY'] === 'full'

/** `quick` by default, `full` under HAMT_RELIABILITY=full. */
export function size<T>(quick: T, full: T): T {
  return FULL ? full : quick
}

/** The error codes the package documents (HamtErrorCode in src/index.ts). */
export const DOCUMENTED_CODES: readonly HamtErrorCode[] = [
  'ERR_HAMT_INVALID_KEY',
  'ERR_HAMT_INVALID_VALUE',
  'ERR_HAMT_INVALID_DELTA',
  'ERR_HAMT_NOT_A_COUNTER',
  'ERR_HAMT_INVALID_ARGUMENT',
  'ERR_HAMT_INVALID_TOKEN',
  'ERR_HAMT_STALE_TOKEN',
  'ERR_HAMT_CLOSED',
  'ERR_HAMT_REENTRANT',
]

// ---------------------------------------------------------------------------------------------
// The bound on unreachable-but-unfreed nodes (`Hamt.stats().unfreedNodes`)
//
// From crates/hazard/src/domain.rs (`Domain::stats`, and the crate docs' "Bounded garbage"):
// a thread scans its retired list once it holds `threshold` objects, between
// `max(RETIRE_THRESHOLD_MIN, 2 × records)` and `max(RETIRE_THRESHOLD_MAX, 2 × records)` (each
// scan raises or lowers it from the time its membarrier took: slow when it must interrupt
// other CPUs running workers, so the bound uses the most), and a scan keeps only objects that some hazard record names (at most
// one per record). So each live thread that retires into a map leaves at most
// `threshold + records` unfreed; a thread that exited leaves its list (below one threshold)
// until the next scan of any thread; and what the user pins (live guards, snapshots) comes
// on top: a snapshot pins its nodes without retiring them, but when it is dropped, the nodes
// that only it held are retired at once (and freed by the eager reclamation pass that
// follows, level by level). So, per map family:
//
//   unfreed ≤ live × (threshold + records) + exited × threshold + dropping × trieNodes(keys)
//
// where `live` counts the threads that write the map, `exited` the threads that wrote it and
// exited, `dropping` the threads that may be dropping a snapshot (or clearing) at the instant
// of the sample (each drops one at a time), and `trieNodes(keys)` bounds the nodes of a trie
// of `keys` entries: one leaf per entry, and fewer branch nodes than entries (each holds two
// children or more, but for the rare run of keys whose hashes share a 5-bit prefix more:
// allowance 64), each an indirection node and a main node, hence 3 × keys + 64.
//
// When crates/hazard's retirement changes (batched, owner-local lists), change these two
// constants and `unfreedBound` to the new documented bound; the tests use nothing else.

/** crates/hazard/src/domain.rs `RETIRE_THRESHOLD_MIN` (outside loom). */
export const RETIRE_THRESHOLD_MIN = 256

/** The most a slow barrier raises the threshold to: `RETIRE_THRESHOLD_MIN << MAX_THRESHOLD_SHIFT` (3). */
export const RETIRE_THRESHOLD_MAX = RETIRE_THRESHOLD_MIN * 8

/** Nodes of a trie of `keys` entries (see above). */
export function trieNodes(keys: number): number {
  return 3 * keys + 64
}

export interface BoundInputs {
  /** Threads that write the map now. */
  readonly live: number
  /** Threads that wrote it and have exited. */
  readonly exited: number
  /** Threads that may be dropping a snapshot or clearing at this instant. */
  readonly dropping: number
  /** The most entries the map (or a snapshot of it) holds. */
  readonly keys: number
  /** Hazard records allocated in the process (`Hamt.stats().hazardRecords`). */
  readonly records: number
}

/** The documented bound on `unfreedNodes`, for one map family (see above). */
export function unfreedBound(b: BoundInputs): number {
  const threshold = Math.max(RETIRE_THRESHOLD_MAX, 2 * b.records)
  return b.live * (threshold + b.records) + b.exited * threshold + b.dropping * trieNodes(b.keys)
}

// ---------------------------------------------------------------------------------------------
// Workers and waits

/** The path of a compiled worker script of __test__/reliability/workers. */
export function workerPath(name: string): string {
  return path.join(__dirname, 'workers', `${name}.js`)
}

export interface Started {
  readonly worker: Worker
  /** Resolves with the exit code. */
  readonly exited: Promise<number>
  /** Errors the worker reported ('error' events), in order. */
  readonly errors: unknown[]
  /** Messages the worker posted, in order. */
  readonly messages: unknown[]
  /** Whether it has exited. */
  done(): boolean
}

/** Starts __test__/reliability/workers/`name`.js with `workerData`. */
export function start(name: string, workerData: unknown, options: { readonly execArgv?: string[] } = {}): Started {
  const worker = new Worker(workerPath(name), { workerData, ...options })
  const errors: unknown[] = []
  const messages: unknown[] = []
  let ended = false
  worker.on('error', (e: unknown) => errors.push(e))
  worker.on('message', (m: unknown) => messages.push(m))
  const exited = new Promise<number>((resolve) =>
    worker.once('exit', (code) => {
      ended = true
      resolve(code)
    }),
  )
  return { worker, exited, errors, messages, done: () => ended }
}

/**
 * Waits (polling once per event-loop turn, then every few ms) until `done()` holds or `alive()`
 * stops holding; gives up after `rounds` polls (a bound on progress, not a deadline: the
 * caller asserts on the result). Returns whether `done()` held.
 */
export async function waitFor(done: () => boolean, alive: () => boolean = () => true, rounds = 100_000): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    if (done()) {
      return true
    }
    if (!alive()) {
      return done()
    }
    await sleep(i < 50 ? 0 : 1)
  }
  return done()
}

/** Collects garbage a few times, letting finalizers run in between. */
export async function settle(rounds = 4): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc()
    await turn()
    await turn()
  }
}

/** Resident memory, in bytes. */
export function rss(): number {
  return process.memoryUsage().rss
}

export const MiB = 1 << 20

export function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`
}

export function statsLine(s: HamtStats = Hamt.stats()): string {
  return `maps ${s.maps}, handles ${s.handles}, unfreed ${s.unfreedNodes}, records ${s.hazardRecordsInUse}/${s.hazardRecords}, reported ${mib(s.reportedMemory)}`
}

/** Logs a check's figures, and appends them to $HAMT_RELIABILITY_REPORT as one JSON line. */
export function report(t: ExecutionContext, check: string, figures: Record<string, unknown>): void {
  const line = JSON.stringify({ check, mode: FULL ? 'full' : 'quick', ...figures }, (_k, v: unknown) =>
    typeof v === 'bigint' ? String(v) : v,
  )
  t.log(line)
  const file = process.env['HAMT_RELIABILITY_REPORT']
  if (file !== undefined && file !== '') {
    fs.appendFileSync(file, `${line}\n`)
  }
}
