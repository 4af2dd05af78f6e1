// Check 2: 4 workers each create and drop many handles and shares (workers/handles.ts: attach
// and close, snapshot and close, new maps shared, attached and closed, handles, snapshots and
// iterators dropped without close for the garbage collector). Under --expose-gc:
//
// - while the workers are still alive, their finalizers bring the native side back to the
//   handles and maps still open (the finalizer path, not the thread's tear-down);
// - after they exit, `Hamt.stats()` is back at the baseline (maps, handles, hazard records in
//   use, reported memory);
// - resident memory grows by at most 16 MiB from after a warm-up round to after the churn
//   (both measured after gc()).
//
// Sizes: 4 × 2·10^4 handles after a warm-up of 4 × 5·10^3 (quick), 4 × 10^5 after 4 × 2·10^4
// (HAMT_RELIABILITY=full).
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { stats } from '../_helpers'
import { MiB, mib, report, rss, settle, size, start, statsLine, waitFor } from './_reliability'
import type { HandlesDone, HandlesTask } from './workers/handles'

const WORKERS = 4
const PER_WORKER = size(20_000, 100_000)
const WARM_UP = size(5_000, 20_000)
const RSS_GROWTH_LIMIT = 16 * MiB

interface Round {
  readonly done: HandlesDone[]
  /** Whether the finalizers released every dropped handle while the workers lived. */
  readonly finalizedWhileAlive: boolean
  /** The statistics when the wait for the finalizers ended. */
  readonly seen: string
  readonly exitCodes: number[]
  readonly errors: unknown[]
}

async function churn(h: Hamt<Key, unknown>, count: number, base: { handles: number; maps: number }): Promise<Round> {
  const control = new SharedArrayBuffer(4)
  const workers = Array.from({ length: WORKERS }, (_, id) =>
    start('handles', { map: h.share(), id, count, control } satisfies HandlesTask),
  )
  const posted = await waitFor(
    () => workers.every((w) => w.messages.length >= 1),
    () => workers.every((w) => !w.done()),
  )
  // Still alive: each holds one handle on `h`, the main thread one; everything else they
  // dropped must be finalized by their own collections.
  const finalizedWhileAlive =
    posted &&
    (await waitFor(
      () => stats().handles === base.handles + 1 + WORKERS && stats().maps === base.maps + 1,
      () => workers.every((w) => !w.done()),
      20_000,
    ))
  const seen = statsLine()
  Atomics.store(new Int32Array(control), 0, 1)
  const exitCodes = await Promise.all(workers.map((w) => w.exited))
  return {
    done: workers.map((w) => w.messages[0] as HandlesDone),
    finalizedWhileAlive,
    seen,
    exitCodes,
    errors: workers.flatMap((w) => w.errors),
  }
}

test('4 workers create and drop handles and shares: the native side returns to zero, and RSS stays within 16 MiB', async (t) => {
  const began = Date.now()
  await settle()
  const before = stats()
  const h = new Hamt<Key, unknown>()
  h.set('warm', 1)
  const base = { handles: before.handles, maps: before.maps }

  const warm = await churn(h, WARM_UP, base)
  t.true(warm.finalizedWhileAlive, `warm-up: ${warm.seen}`)
  t.deepEqual(warm.errors, [])
  await settle(8)
  const rssBefore = rss()
  const statsBefore = stats()

  const round = await churn(h, PER_WORKER, base)
  t.deepEqual(round.errors, [])
  t.deepEqual(round.exitCodes, [0, 0, 0, 0])
  t.true(round.finalizedWhileAlive, `while the workers lived, their finalizers did not release everything: ${round.seen}`)
  for (const d of round.done) {
    t.deepEqual(d.problems, [])
    t.true(d.created >= PER_WORKER)
    t.true(d.stale > 0)
  }
  await settle(8)
  const rssAfter = rss()
  const after = stats()
  t.is(after.handles, base.handles + 1, statsLine(after))
  t.is(after.maps, base.maps + 1, statsLine(after))
  t.is(after.hazardRecordsInUse, statsBefore.hazardRecordsInUse, statsLine(after))
  const growth = rssAfter - rssBefore
  t.true(growth <= RSS_GROWTH_LIMIT, `RSS grew by ${mib(growth)} (${mib(rssBefore)} -> ${mib(rssAfter)})`)

  h.close()
  await settle()
  const end = stats()
  t.is(end.handles, before.handles)
  t.is(end.maps, before.maps)
  t.is(end.reportedMemory, before.reportedMemory)
  const sum = (f: (d: HandlesDone) => number): number => round.done.reduce((a, d) => a + f(d), 0)
  report(t, 'handle-churn', {
    workers: WORKERS,
    handlesPerWorker: PER_WORKER,
    warmUpPerWorker: WARM_UP,
    created: sum((d) => d.created),
    closed: sum((d) => d.closed),
    droppedForGc: sum((d) => d.dropped),
    staleTokensChecked: sum((d) => d.stale),
    rssBefore: mib(rssBefore),
    rssAfter: mib(rssAfter),
    rssGrowth: mib(growth),
    hazardRecords: end.hazardRecords,
    seconds: (Date.now() - began) / 1000,
  })
})
