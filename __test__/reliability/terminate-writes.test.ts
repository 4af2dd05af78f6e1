// Check 1: worker.terminate() at random points while 4 to 8 workers write.
//
// Each trial starts 4 to 8 writers (workers/writer.ts) on a fresh map. Every writer writes its
// own keys, one per write, with every kind of operation (set, setIfAbsent, swap, update,
// increment, setMany, compareAndSet; strings, records, bytes, bigints, numbers, Maps, Dates),
// sets and deletes a short-lived key, increments one counter shared by all, leaves iterators
// open, and reports each write as done through a SharedArrayBuffer (Atomics.store after the
// write returned). The test terminates the writers at random points, picked by their progress
// (a random count of reported writes, 0 included: terminated before it attached), one at a
// time or all at once. Then:
//
// - every reported write is present with the value that worker wrote; the write in flight
//   (one per worker at most) is present with that value or absent; nothing else is there;
// - the shared counter is between the increments reported and that plus one per worker;
// - no worker reported an error; the process lives on (the test goes on);
// - after all the trials, handles, maps and hazard records in use are back to the baseline.
//
// A second test terminates workers that only open iterators (left open or to the garbage
// collector), and checks that their hazard records come back each time.
//
// Sizes: 20 trials of writers and 40 of iterators (quick), 200 and 200 (HAMT_RELIABILITY=full).
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { random, same, seedFromEnv, show, stats } from '../_helpers'
import { report, settle, size, start, statsLine, waitFor, type Started } from './_reliability'
import type { ClonedWriterTask } from './workers/cloned-writer'
import type { IteratorsTask } from './workers/iterators'
import { clonedValue, expected, writerKey, type WriterTask } from './workers/writes'

const TRIALS = size(20, 200)
/** Writes after which a writer may be terminated: 0 to this. */
const MAX_TARGET = size(1500, 4000)

function keyName(k: Key): string {
  return show(k)
}

test.serial('terminate() at random points while 4 to 8 workers write: every reported write is present, nothing else, nothing leaks', async (t) => {
  const seed = seedFromEnv()
  const rand = random(seed)
  t.log(`seed ${seed} (TEST_SEED=${seed} to repeat)`)
  // The main thread takes its own hazard records on first use: before the baseline.
  const warm = new Hamt<Key, unknown>()
  warm.set('warm', 1)
  warm.close()
  await settle()
  const base = stats()
  const recordsAfter: number[] = []
  const began = Date.now()
  let workersStarted = 0
  let terminatedMidWrite = 0
  let terminatedBeforeFirstWrite = 0
  let reportedWrites = 0
  let inFlightLanded = 0
  let iteratorsLeftOpen = 0
  const problems: string[] = []

  for (let trial = 0; trial < TRIALS && problems.length === 0; trial++) {
    const n = 4 + Math.floor(rand() * 5)
    const h = new Hamt<Key, unknown>()
    const progress = new SharedArrayBuffer(4 * 3 * n)
    const cells = new Int32Array(progress)
    const writers: Started[] = []
    for (let id = 0; id < n; id++) {
      writers.push(start('writer', { map: h.share(), id, progress } satisfies WriterTask))
    }
    workersStarted += n
    const targets = writers.map(() => (rand() < 0.1 ? 0 : Math.floor(rand() * MAX_TARGET)))
    const together = rand() < 0.3
    const order = writers.map((_, id) => id).sort(() => rand() - 0.5)
    const terminations: Promise<number>[] = []
    for (const id of order) {
      const w = writers[id] as Started
      const target = targets[id] as number
      const reached = await waitFor(() => Atomics.load(cells, 3 * id) >= target, () => !w.done())
      if (!reached) {
        problems.push(`trial ${trial}: writer ${id} stopped at ${Atomics.load(cells, 3 * id)} writes, before ${target}: ${String(w.errors[0])}`)
      }
      if (Atomics.load(cells, 3 * id) === 0) {
        terminatedBeforeFirstWrite++
      } else {
        terminatedMidWrite++
      }
      const done = w.worker.terminate()
      if (together) {
        terminations.push(done)
      } else {
        await done
      }
    }
    await Promise.all(terminations)
    await Promise.all(writers.map((w) => w.exited))

    // Every reported write is there; the one in flight may be; nothing else is.
    let entries = 0
    let incs = 0
    for (let id = 0; id < n; id++) {
      const done = Atomics.load(cells, 3 * id)
      reportedWrites += done
      incs += Atomics.load(cells, 3 * id + 1)
      iteratorsLeftOpen += Atomics.load(cells, 3 * id + 2)
      for (let i = 0; i < done; i++) {
        const got = h.get(writerKey(id, i))
        if (!same(got, expected(id, i))) {
          problems.push(`trial ${trial}: writer ${id}'s write ${i} (of ${done} reported): ${keyName(writerKey(id, i))} = ${show(got)}, expected ${show(expected(id, i))}`)
          break
        }
      }
      entries += done
      if (h.has(writerKey(id, done))) {
        const got = h.get(writerKey(id, done))
        if (same(got, expected(id, done))) {
          inFlightLanded++
          entries++
        } else {
          problems.push(`trial ${trial}: writer ${id}'s write in flight landed as ${show(got)}`)
        }
      }
      const temp = h.get(`t${id}`)
      if (temp !== undefined && !(typeof temp === 'number' && temp <= done)) {
        problems.push(`trial ${trial}: t${id} = ${show(temp)}`)
      }
      if (temp !== undefined) {
        entries++
      }
      for (const errs of writers[id]?.errors ?? []) {
        problems.push(`trial ${trial}: writer ${id} reported an error: ${String(errs)}`)
      }
    }
    const shared = h.get('shared')
    if (shared !== undefined) {
      entries++
    }
    const sharedCount = typeof shared === 'number' ? shared : 0
    if (!(sharedCount >= incs && sharedCount <= incs + n)) {
      problems.push(`trial ${trial}: shared counter ${show(shared)}, ${incs} increments reported by ${n} writers`)
    }
    const iterated = [...h.keys()].length
    if (iterated !== entries || h.size !== entries) {
      problems.push(`trial ${trial}: ${iterated} entries iterated, size ${h.size}, expected ${entries} (reported writes, landed in-flight writes, short-lived and shared keys)`)
    }
    h.close()
    recordsAfter.push(stats().hazardRecords)
  }
  t.deepEqual(problems.slice(0, 5), [])
  t.log(`hazard records allocated after each trial: ${recordsAfter.join(' ')}`)

  // Every writer's handles, cursors and hazard records came back.
  const back = await waitFor(
    () => {
      const s = stats()
      return s.handles === base.handles && s.maps === base.maps && s.hazardRecordsInUse === base.hazardRecordsInUse
    },
    () => true,
    5000,
  )
  t.true(back, `after the trials: ${statsLine()}; baseline: ${statsLine(base)}`)
  t.true(terminatedMidWrite >= TRIALS * 3, `${terminatedMidWrite} writers terminated after their first write`)
  report(t, 'terminate-writes', {
    trials: TRIALS,
    workersStarted,
    terminatedMidWrite,
    terminatedBeforeFirstWrite,
    reportedWrites,
    inFlightLanded,
    iteratorsLeftOpen,
    hazardRecords: stats().hazardRecords,
    seconds: (Date.now() - began) / 1000,
    problems: problems.length,
  })
})

test.serial('terminate() while a worker writes structured-clone values: every write that returned is in the map', async (t) => {
  // Structured clone runs JavaScript inside the call; once the worker is terminating, Node-API
  // refuses to run it and answers "pending exception" with none pending. The binding must
  // throw then (ERR_HAMT_NAPI), not return as if the write had happened: V8 stops the thread
  // only at its next interrupt check, so the worker's next statement (the report) could still
  // run. Every write here is such a call, so terminations land inside one often.
  const seed = seedFromEnv()
  const rand = random(seed)
  t.log(`seed ${seed} (TEST_SEED=${seed} to repeat)`)
  const h = new Hamt<Key, unknown>()
  const trials = size(40, 300)
  const problems: string[] = []
  let reportedWrites = 0
  let inFlightLanded = 0
  for (let trial = 0; trial < trials && problems.length === 0; trial++) {
    const progress = new SharedArrayBuffer(4)
    const cells = new Int32Array(progress)
    const base = trial * 1_000_000
    const w = start('cloned-writer', { map: h.share(), progress, base } satisfies ClonedWriterTask)
    const target = Math.floor(rand() * 3000)
    const reached = await waitFor(() => Atomics.load(cells, 0) >= target, () => !w.done())
    if (!reached) {
      problems.push(`trial ${trial}: the writer stopped at ${Atomics.load(cells, 0)}: ${String(w.errors[0])}`)
    }
    await w.worker.terminate()
    await w.exited
    const done = Atomics.load(cells, 0)
    reportedWrites += done
    for (let i = 0; i < done; i++) {
      const got = h.get(base + i)
      if (!same(got, clonedValue(i))) {
        problems.push(`trial ${trial}: write ${i} (of ${done} reported) = ${show(got)}, expected ${show(clonedValue(i))}`)
        break
      }
    }
    const inFlight = h.get(base + done)
    if (inFlight !== undefined) {
      if (same(inFlight, clonedValue(done))) {
        inFlightLanded++
      } else {
        problems.push(`trial ${trial}: the write in flight landed as ${show(inFlight)}`)
      }
    }
    if (h.has(base + done + 1)) {
      problems.push(`trial ${trial}: a write after the one in flight landed`)
    }
    for (const e of w.errors) {
      problems.push(`trial ${trial}: the writer reported an error: ${String(e)}`)
    }
  }
  t.deepEqual(problems.slice(0, 5), [])
  report(t, 'terminate-cloned-writes', { trials, reportedWrites, inFlightLanded, problems: problems.length })
  h.close()
})

test.serial('terminate() while a worker opens iterators: their hazard records and snapshots are released (records in use back to the baseline)', async (t) => {
  // Every open iterator holds a snapshot and a hazard record (its guard) until it is closed or
  // finalized. A terminated worker's iterators must be released with its environment, as its
  // handles are (crates/node/src/env.rs closes handles even when their finalizers never run);
  // otherwise the thread's block of records is never handed back (crates/hazard keeps a
  // block whose slot is still held at the thread's exit owned forever) and the snapshot's
  // nodes leak.
  const seed = seedFromEnv()
  const rand = random(seed)
  t.log(`seed ${seed} (TEST_SEED=${seed} to repeat)`)
  const h = new Hamt<Key, unknown>()
  for (let i = 0; i < 100; i++) {
    h.set(i, i)
  }
  await settle()
  const base = stats()
  const trials = size(12, 200)
  const stuck: string[] = []
  let opened = 0
  for (let trial = 0; trial < trials && stuck.length < 3; trial++) {
    const before = stats().hazardRecordsInUse
    const progress = new SharedArrayBuffer(4)
    const cells = new Int32Array(progress)
    const w = start('iterators', { map: h.share(), progress } satisfies IteratorsTask)
    const target = Math.floor(rand() * size(5_000, 20_000))
    const reached = await waitFor(() => Atomics.load(cells, 0) >= target, () => !w.done())
    t.true(reached, `trial ${trial}: the worker stopped at ${Atomics.load(cells, 0)}: ${String(w.errors[0])}`)
    await w.worker.terminate()
    await w.exited
    opened += Atomics.load(cells, 0)
    // A thread hands its block of records back when the OS thread ends, which can be a while
    // after its exit event on a loaded machine: up to about 20 s here.
    const back = await waitFor(() => stats().hazardRecordsInUse === before && stats().handles === base.handles, () => true, 20_000)
    if (!back) {
      stuck.push(`trial ${trial} (terminated after ${Atomics.load(cells, 0)} iterators): ${statsLine()}`)
    }
  }
  t.deepEqual(stuck, [], `baseline ${statsLine(base)} (the test stops at the third trial whose records stay in use)`)
  h.close()
  report(t, 'terminate-iterators', { trials, iteratorsOpened: opened, trialsWithRecordsStuck: stuck.length, recordsInUseAtEnd: stats().hazardRecordsInUse, baseline: base.hazardRecordsInUse })
})
