// Check 3: workers that exit while holding hazard records hand them back, and their retired
// nodes are freed.
//
// Each round starts one worker per way of ending (workers/exiter.ts), all at once: each
// retires nodes into the shared map (swaps on its own keys, fewer than a scan threshold, so
// they stay in its retired list), opens 20 handles, a snapshot and many iterators (each holds
// a hazard record: past eight, the thread takes overflow records; in even rounds they are of
// a map of the worker's own, so that nothing the tear-down closes reclaims the shared map's
// lists, and the exited threads' nodes are left to the main thread), then ends at its holding
// point, inside update() functions nested on several maps, inside an iteration, inside a
// getter that v8.serialize runs, or at the top: by returning, process.exit(), throwing, or
// worker.terminate(). Then:
//
// - `hazardRecordsInUse` is back to its baseline (every block and overflow record returned);
// - handles and maps are back (the main thread's map only);
// - `hazardRecords` (the pool) does not grow with the rounds: after the first round, it stays
//   within one block of what the first round allocated;
// - the exited threads' retired nodes are freed once the main thread writes a little: after
//   one scan threshold of swaps, `unfreedNodes` is within the bound for the main thread alone
//   (`unfreedBound` in _reliability.ts), and right after the exits it was within the bound
//   that counts the exited threads.
//
// Sizes: 2 rounds of 8 workers (quick), 12 rounds (HAMT_RELIABILITY=full).
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { stats } from '../_helpers'
import { RETIRE_THRESHOLD_MAX, report, settle, size, start, statsLine, unfreedBound, waitFor, type Started } from './_reliability'
import { EXIT_MODES, type ExitMode, type ExitTask } from './workers/exit-modes'

const ROUNDS = size(2, 12)
const DEPTH = 12
const ITERATORS = 24
/** Swaps per worker: one to a few retired nodes each (the replaced leaf and main node), below one scan threshold in all. */
const WRITES = 30

test('workers that exit holding hazard records (nested updates, iterations, getters; return, exit, throw, terminate) hand them and their retired nodes back', async (t) => {
  const began = Date.now()
  const h = new Hamt<Key, unknown>()
  for (let i = 0; i < 64; i++) {
    h.set(`k${i}`, i)
  }
  await settle()
  const base = stats()
  const allocated: number[] = []
  const leftByExited: number[] = []
  const afterMainWrites: number[] = []
  const insideRecords: Record<string, number> = {}
  const exitCodes: Record<string, number[]> = {}
  let workers = 0
  let swaps = 0

  for (let round = 0; round < ROUNDS; round++) {
    const started: [ExitMode, Started, Int32Array][] = EXIT_MODES.map((mode, id) => {
      const control = new SharedArrayBuffer(12)
      const task: ExitTask = { map: h.share(), id, mode, writes: WRITES, ownIterators: round % 2 === 0, depth: DEPTH, iterators: ITERATORS, control }
      return [mode, start('exiter', task), new Int32Array(control)]
    })
    workers += started.length
    for (const [mode, w, ctl] of started) {
      const reached = await waitFor(() => Atomics.load(ctl, 0) === 1, () => !w.done())
      t.true(reached, `round ${round}, ${mode}: the worker did not reach its holding point: ${String(w.errors[0])}`)
      insideRecords[mode] = Math.max(insideRecords[mode] ?? 0, Atomics.load(ctl, 1))
      if (mode.startsWith('terminate')) {
        await w.worker.terminate()
      }
    }
    for (const [mode, w] of started) {
      const code = await w.exited
      ;(exitCodes[mode] ??= []).push(code)
      t.is(code, mode.startsWith('throw') || mode.startsWith('terminate') ? 1 : 0, `round ${round}, ${mode}: exit code`)
      const errors = w.errors.map(String)
      t.deepEqual(errors, mode.startsWith('throw') ? [`Error: thrown inside ${mode.endsWith('update') ? 'update' : 'iteration'}`] : [], `round ${round}, ${mode}`)
    }
    // Records, handles and maps back: the exits' tear-down has run by the 'exit' events, but
    // a thread's own thread-locals (its block of records) go when the OS thread ends.
    const back = await waitFor(() => {
      const s = stats()
      return s.hazardRecordsInUse === base.hazardRecordsInUse && s.handles === base.handles && s.maps === base.maps
    }, () => true, 5000)
    t.true(back, `round ${round}: ${statsLine()}; baseline ${statsLine(base)}`)
    const s = stats()
    allocated.push(s.hazardRecords)
    leftByExited.push(s.unfreedNodes)
    const exitedBound = unfreedBound({ live: 1, exited: started.length, dropping: 0, keys: 64, records: s.hazardRecords })
    t.true(s.unfreedNodes <= exitedBound, `round ${round}: ${s.unfreedNodes} unfreed after the exits, bound ${exitedBound}`)
    if (round % 2 === 0) {
      // Nothing of the shared map was closed by the exits (the snapshots and iterators were of
      // the workers' own maps): their retired nodes are still there, to hand off.
      t.true(s.unfreedNodes >= started.length * WRITES, `round ${round}: only ${s.unfreedNodes} unfreed nodes left by ${started.length} workers of ${WRITES} swaps`)
    }
    // The main thread writes a little: one scan threshold of swaps (the most it can be: a scan
    // while workers ran may have raised it) retires at least that many nodes, so it scans, and
    // a scan takes every list, the exited threads' included.
    const threshold = Math.max(RETIRE_THRESHOLD_MAX, 2 * s.hazardRecords)
    for (let i = 0; i < threshold; i++) {
      h.swap(`k${i % 64}`, i)
      swaps++
    }
    const after = stats()
    afterMainWrites.push(after.unfreedNodes)
    const mainBound = unfreedBound({ live: 1, exited: 0, dropping: 0, keys: 64, records: after.hazardRecords })
    t.true(after.unfreedNodes <= mainBound, `round ${round}: ${after.unfreedNodes} unfreed after the main thread's ${threshold} swaps, bound ${mainBound}`)
  }
  // The pool: reused, not grown by the number of workers started. It is a pool of blocks of
  // 8 records, one per thread alive at once, plus overflow records for threads that hold more
  // than 8 guards: so it is bounded by one round's threads (all of a round's workers run at
  // once, and a round may overlap the previous one's last exits) and what they hold at most,
  // whatever the number of rounds.
  const perRound = EXIT_MODES.length
  const overflow = Object.values(insideRecords).reduce((sum, n) => sum + Math.max(0, n - 8), 0)
  const poolBound = base.hazardRecords + 8 * 2 * perRound + 2 * overflow
  const last = allocated[allocated.length - 1] ?? 0
  t.true(
    last <= poolBound,
    `hazard records allocated after each round: ${allocated.join(' ')} (${workers} workers started); bound ${poolBound} = baseline ${base.hazardRecords} + two rounds' blocks ${8 * 2 * perRound} + their overflow ${2 * overflow}`,
  )
  t.is(h.size, 64 + 16 * EXIT_MODES.length, 'the workers\' writes stayed')
  t.false(h.has('getter'), 'the set whose getter exited never landed')
  h.close()
  report(t, 'exit-records', {
    rounds: ROUNDS,
    workers,
    modes: EXIT_MODES.length,
    nestedUpdateDepth: DEPTH,
    iteratorsPerWorker: ITERATORS,
    recordsInUseAtHoldingPoint: insideRecords,
    recordsInUseBaseline: base.hazardRecordsInUse,
    hazardRecordsAllocatedPerRound: allocated,
    unfreedLeftByExitedWorkers: leftByExited,
    unfreedAfterMainWrites: afterMainWrites,
    exitCodes,
    seconds: (Date.now() - began) / 1000,
  })
})
