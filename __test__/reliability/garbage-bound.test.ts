// Check 4: unreachable-but-unfreed nodes stay within the documented bound under a sustained
// mixed workload.
//
// Three workers (workers/mixed.ts) run every kind of operation on a shared map of 2,000 keys,
// with writable snapshots taken, written and dropped (closed or collected) and iterations
// (whole or abandoned); the main thread writes, takes and drops snapshots and iterates too,
// and samples `Hamt.stats().unfreedNodes` between its operations. Every sample must be within
// `unfreedBound` (_reliability.ts): live threads × (threshold + records) + the threads that
// may be dropping a snapshot × the nodes of a 2,000-key trie, with the records and threshold
// read at that sample. The bound's derivation, from crates/hazard's documentation, is beside
// its constant; the figures logged give the largest sample against it.
//
// Sizes: at least 5 s of sampling (quick), at least 60 s (HAMT_RELIABILITY=full); both also
// wait for a minimum of operations and samples (progress, not time, is what the test needs).
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { random, seedFromEnv, sleep, stats } from '../_helpers'
import { RETIRE_THRESHOLD_MAX, report, settle, size, start, statsLine, unfreedBound, waitFor } from './_reliability'
import type { MixedTask } from './workers/mixed'

const WORKERS = 3
const KEYS = 2000
const SECONDS = size(5, 60)
const MIN_OPS = size(50_000, 500_000)
const MIN_SAMPLES = size(500, 5000)

test('unfreed nodes stay within the documented bound under a sustained mixed workload with snapshots and iterations', async (t) => {
  const seed = seedFromEnv()
  const rand = random(seed)
  t.log(`seed ${seed} (TEST_SEED=${seed} to repeat)`)
  const h = new Hamt<Key, unknown>()
  for (let i = 0; i < KEYS; i++) {
    h.set(`k${i}`, i)
  }
  await settle()
  const control = new SharedArrayBuffer(4 * (1 + WORKERS))
  const ctl = new Int32Array(control)
  const workers = Array.from({ length: WORKERS }, (_, id) =>
    start('mixed', { map: h.share(), id, keys: KEYS, seed: Math.floor(rand() * 2 ** 31), control } satisfies MixedTask),
  )
  const ops = (): number => Array.from({ length: WORKERS }, (_, id) => Atomics.load(ctl, 1 + id)).reduce((a, b) => a + b, 0)
  const running = await waitFor(() => workers.every((_, id) => Atomics.load(ctl, 1 + id) > 0), () => workers.every((w) => !w.done()))
  t.true(running, `the workers did not start: ${String(workers.flatMap((w) => w.errors)[0])}`)

  const began = Date.now()
  let samples = 0
  let maxUnfreed = 0
  let maxBound = 0
  let boundAtMax = 0
  let minSlack = Number.POSITIVE_INFINITY
  let sumUnfreed = 0
  let mainOps = 0
  let maxRecords = 0
  const violations: string[] = []
  const sample = (): void => {
    const s = stats()
    // Live: the workers and the main thread; each may be dropping a snapshot.
    const bound = unfreedBound({ live: WORKERS + 1, exited: 0, dropping: WORKERS + 1, keys: KEYS, records: s.hazardRecords })
    samples++
    sumUnfreed += s.unfreedNodes
    maxRecords = Math.max(maxRecords, s.hazardRecords)
    maxBound = Math.max(maxBound, bound)
    minSlack = Math.min(minSlack, bound - s.unfreedNodes)
    if (s.unfreedNodes > maxUnfreed) {
      maxUnfreed = s.unfreedNodes
      boundAtMax = bound
    }
    if (s.unfreedNodes > bound && violations.length < 10) {
      violations.push(`sample ${samples} at ${(Date.now() - began) / 1000} s: ${s.unfreedNodes} unfreed > bound ${bound} (${statsLine(s)})`)
    }
  }
  while (
    (Date.now() - began < SECONDS * 1000 || ops() < MIN_OPS || samples < MIN_SAMPLES) &&
    workers.every((w) => !w.done())
  ) {
    sample()
    const r = rand()
    if (r < 0.05) {
      const snap = h.snapshot()
      snap.set(`k${Math.floor(rand() * KEYS)}`, 'main')
      sample()
      snap.close()
    } else if (r < 0.08) {
      let n = 0
      for (const _ of h.entries()) {
        if (++n % 500 === 0) {
          sample()
        }
      }
    } else {
      for (let j = 0; j < 20; j++) {
        const k = `k${Math.floor(rand() * KEYS)}`
        if (rand() < 0.3) {
          h.delete(k)
        } else {
          h.set(k, j)
        }
      }
    }
    mainOps++
    await sleep(rand() < 0.5 ? 0 : 1)
  }
  const elapsed = (Date.now() - began) / 1000
  const workerOps = ops()
  Atomics.store(ctl, 0, 1)
  const codes = await Promise.all(workers.map((w) => w.exited))
  t.deepEqual(workers.flatMap((w) => w.errors).map(String), [])
  t.deepEqual(codes, Array.from({ length: WORKERS }, () => 0))
  t.deepEqual(violations, [])
  t.true(samples >= MIN_SAMPLES)
  // Quiescent: the main thread alone writes a scan threshold's worth, and the unfreed count
  // falls to the one-thread bound (the workers' lists were handed over at their exit).
  // (Twice the most the threshold can be: the last scan while the workers ran may have raised it.)
  for (let i = 0; i < 2 * Math.max(RETIRE_THRESHOLD_MAX, 2 * stats().hazardRecords); i++) {
    h.set(`k${i % KEYS}`, i)
  }
  const quiet = stats()
  const quietBound = unfreedBound({ live: 1, exited: 0, dropping: 0, keys: KEYS, records: quiet.hazardRecords })
  t.true(quiet.unfreedNodes <= quietBound, `after the workload: ${statsLine(quiet)}, bound ${quietBound}`)
  h.close()
  report(t, 'garbage-bound', {
    workers: WORKERS,
    keys: KEYS,
    seconds: elapsed,
    samples,
    workerOps,
    mainOps,
    maxUnfreed,
    boundAtMax,
    maxBound,
    minSlack,
    meanUnfreed: Math.round(sumUnfreed / samples),
    maxHazardRecords: maxRecords,
    unfreedWhenQuiet: quiet.unfreedNodes,
    quietBound,
  })
})
