// worker.terminate() in the middle of writes, repeatedly: several workers write with every
// kind of operation, and are terminated at random points (picked by their progress, not by
// time). The map must stay consistent (every value is one a worker wrote for that key, size
// is the number of entries iterated), the handles and hazard records must come back, and the
// process must live on.
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { Worker } from 'node:worker_threads'
import { gc, random, seedFromEnv, show, stats, turn, until, workerPath } from './_helpers'
import type { ChurnTask } from './workers/protocol'

const WORKERS = 3
const KEYS = 64

/** Why the entry [k, v] is not one a churn worker could have written, or null. */
function badEntry(k: Key, v: unknown): string | null {
  if (typeof k !== 'string') {
    return 'a key no worker writes'
  }
  const m = /^([soun]):(\d+)$/.exec(k)
  if (m === null || Number(m[2]) >= KEYS) {
    return 'a key no worker writes'
  }
  switch (m[1]) {
    case 's': {
      if (typeof v !== 'string') {
        return 'not a string'
      }
      const [key, id, seq] = v.split('|')
      return key === k && Number(id) < WORKERS && Number.isInteger(Number(seq)) ? null : 'a string no worker wrote for this key'
    }
    case 'o':
    case 'u': {
      if (typeof v !== 'object' || v === null) {
        return 'not a record'
      }
      const r = v as { key?: unknown; id?: unknown; seq?: unknown; check?: unknown }
      return r.key === k && typeof r.id === 'number' && r.id < WORKERS && typeof r.seq === 'number' && r.check === r.id * 1_000_003 + r.seq
        ? null
        : 'a record no worker wrote for this key'
    }
    default:
      return typeof v === 'number' && Number.isInteger(v) && v > 0 ? null : 'not a count'
  }
}

test('terminating writers at random points leaves the map consistent and the process alive', async (t) => {
  const seed = seedFromEnv()
  const rand = random(seed)
  t.log(`seed ${seed} (TEST_SEED=${seed} to repeat)`)
  gc()
  await turn()
  const base = stats()
  const h = new Hamt<Key, unknown>()
  const rounds = 20
  let terminatedWhileWriting = 0
  for (let round = 0; round < rounds; round++) {
    const progress = new SharedArrayBuffer(4 * WORKERS)
    const cells = new Int32Array(progress)
    const workers = Array.from({ length: WORKERS }, (_, id) => {
      const task: ChurnTask = { map: h.share(), id, keys: KEYS, seed: Math.floor(rand() * 2 ** 31), progress }
      const w = new Worker(workerPath('churn'), { workerData: task })
      const exited = new Promise<number>((resolve) => w.once('exit', resolve))
      w.on('error', () => {
        // A terminated worker may report nothing; any other error shows in the consistency checks.
      })
      return { w, id, exited }
    })
    // Terminate each at a random number of operations (0: before it has done anything).
    const order = workers.slice().sort(() => rand() - 0.5)
    for (const { w, id } of order) {
      const target = rand() < 0.15 ? 0 : Math.floor(rand() * 1200)
      await until(() => Atomics.load(cells, id) >= target, 4000)
      if (Atomics.load(cells, id) > 0) {
        terminatedWhileWriting++
      }
      await w.terminate()
    }
    // (A worker terminated before it started may exit with 0 rather than 1: not checked.)
    await Promise.all(workers.map((w) => w.exited))
    // Consistency after this round.
    const entries = [...h]
    const bad = entries.map(([k, v]) => [k, v, badEntry(k, v)] as const).filter((e) => e[2] !== null)
    t.deepEqual(
      bad.slice(0, 3).map(([k, v, why]) => `${show(k)} = ${show(v)}: ${String(why)}`),
      [],
      `round ${round}`,
    )
    t.is(new Set(entries.map((e) => e[0])).size, entries.length, `round ${round}: no key twice`)
    t.is(h.size, entries.length, `round ${round}: size is the number of entries`)
    const snap = h.snapshot()
    t.is(snap.size, entries.length, `round ${round}: snapshot size`)
    snap.close()
    const values = h.getMany(entries.map((e) => e[0]))
    t.deepEqual(values, entries.map((e) => e[1]), `round ${round}: get agrees with iteration`)
  }
  t.true(terminatedWhileWriting >= rounds, `${terminatedWhileWriting} workers terminated while writing`)
  // All the workers' handles are gone, and their hazard records handed back.
  const released = await until(() => stats().handles === base.handles + 1, 500)
  t.true(released, `handles ${stats().handles}, expected ${base.handles + 1}`)
  t.true(stats().hazardRecordsInUse <= base.hazardRecordsInUse + 8, `hazard records in use: ${stats().hazardRecordsInUse} (was ${base.hazardRecordsInUse})`)
  // The map still takes writes of every kind.
  h.set('s:0', 's:0|0|0')
  const count = h.get('n:0')
  t.is(h.increment('n:0'), (typeof count === 'number' ? count : 0) + 1)
  h.clear()
  t.is(h.size, 0)
  h.close()
  t.is(stats().handles, base.handles)
})
