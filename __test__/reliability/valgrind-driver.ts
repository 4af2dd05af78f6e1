// Check 7's workload: a script (not an ava test) that scripts/reliability-node.sh runs under
// valgrind memcheck. It exercises every method of the package, every kind of key and value,
// every error path, snapshots and iteration, close, Symbol.dispose and finalizers (gc), and
// workers that attach, write, iterate and exit normally, by process.exit, by throwing and by
// worker.terminate() in the middle of their writes. It is small (valgrind runs Node some 30
// to 100 times slower) and exits 0 after checking its own results, or 1 with what was wrong.
//
//   node --expose-gc build/__test__/reliability/valgrind-driver.js [--workers N] [--entries N]
import { Hamt, type HamtHandle, type Key } from 'concurrent-hamt'
import * as assert from 'node:assert/strict'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'

interface DriverTask {
  readonly map: HamtHandle
  readonly id: number
  readonly end: 'return' | 'exit' | 'throw' | 'spin'
  readonly progress: SharedArrayBuffer
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (typeof g === 'function') {
    g()
  }
}

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function codeOf(e: unknown): unknown {
  return typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined
}

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => codeOf(e) === code)
}

/** Every method, with every kind of key and value, on one map. */
function everyMethod(entries: number): void {
  const h = new Hamt<Key, unknown>([['init', 1]])
  const keys: Key[] = ['s', 'é', '\ud800', 1, -0, NaN, 2n ** 70n, -1n, true, false, new Uint8Array([1, 2, 3]), Buffer.from('buf'), 'x'.repeat(100)]
  const values: unknown[] = [undefined, null, true, 1.5, NaN, 2n ** 80n, -5n, 'str', 'ünï', new Uint8Array(1000), Buffer.from('b'), { a: [1, { b: 2n }] }, new Map([[1, new Set([2])]]), new Date(5), [1, , 3]]
  keys.forEach((k, i) => {
    h.set(k, values[i % values.length])
    assert.ok(h.has(k))
  })
  for (const k of keys) {
    h.get(k)
  }
  assert.equal(h.setIfAbsent('s', 2), false)
  assert.equal(h.setIfAbsent('new', 2), true)
  assert.equal(h.swap('new', 3), 2)
  assert.equal(h.compareAndSet('new', 3, 4), true)
  assert.equal(h.compareAndSet('new', 3, 5), false)
  assert.equal(h.compareAndSet('new', 4, undefined), true)
  assert.deepEqual(h.update('u', (v) => (v === undefined ? { n: 1 } : v)), { n: 1 })
  assert.equal(h.increment('c'), 1)
  assert.equal(h.increment('c', 2.5), 3.5)
  assert.equal(h.increment('big', 2n ** 64n), 2n ** 64n)
  assert.equal(h.increment('big', -(2n ** 64n)), 0n)
  assert.deepEqual(h.getMany(['c', 'absent']), [3.5, undefined])
  h.setMany(new Map<Key, unknown>([['m1', 1], ['m2', { x: 1 }]]))
  assert.ok(h.delete('m1'))
  assert.ok(!h.delete('m1'))
  // Errors of every code.
  throwsCode(() => h.get({} as unknown as Key), 'ERR_HAMT_INVALID_KEY')
  throwsCode(() => h.set('f', () => 1), 'ERR_HAMT_INVALID_VALUE')
  throwsCode(() => h.set('g', { get x(): number { throw new Error('getter') } }), 'ERR_HAMT_INVALID_VALUE')
  throwsCode(() => h.increment('c', NaN), 'ERR_HAMT_INVALID_DELTA')
  throwsCode(() => h.increment('s'), 'ERR_HAMT_NOT_A_COUNTER')
  throwsCode(() => h.update('c', 5 as unknown as () => unknown), 'ERR_HAMT_INVALID_ARGUMENT')
  throwsCode(() => h.update('c', () => h.set('c', 0)), 'ERR_HAMT_REENTRANT')
  throwsCode(() => Hamt.attach({ kind: 'concurrent-hamt', token: 'nope' }), 'ERR_HAMT_INVALID_TOKEN')
  throwsCode(() => Hamt.attach({ kind: 'concurrent-hamt', token: '0'.repeat(32) }), 'ERR_HAMT_STALE_TOKEN')
  assert.throws(() => h.update('c', () => {
    throw new RangeError('mine')
  }), RangeError)
  // Snapshots: writable and read-only (iteration), abandoned part-way, and nested.
  const snap = h.snapshot()
  h.set('after snapshot', 1)
  snap.set('only in snap', 1)
  assert.ok(!h.has('only in snap'))
  assert.ok(!snap.has('after snapshot'))
  const deeper = snap.snapshot()
  let n = 0
  for (const _ of h) {
    n++
  }
  assert.equal(n, h.size)
  const it = h.keys()
  it.next()
  it.return?.()
  const open = snap.values()
  open.next() // left open: finalized by gc
  h.forEach(() => undefined)
  void [...deeper.entries()]
  deeper[Symbol.dispose]()
  snap.close()
  // Many entries, removed again, then cleared.
  for (let i = 0; i < entries; i++) {
    h.set(i, `v${i}`)
  }
  for (let i = 0; i < entries; i += 2) {
    h.delete(i)
  }
  h.clear()
  assert.equal(h.size, 0)
  // Handles dropped without close, for the finalizers.
  for (let i = 0; i < 50; i++) {
    Hamt.attach(h).get('x')
    h.snapshot()
    new Hamt([[i, i]]).keys().next()
  }
  h.close()
  throwsCode(() => h.get('s'), 'ERR_HAMT_CLOSED')
}

async function main(): Promise<void> {
  const workers = arg('--workers', 4)
  const entries = arg('--entries', 2000)
  everyMethod(entries)
  for (let i = 0; i < 5; i++) {
    gc()
    await turn()
  }
  // Workers on one map, ending in every way.
  const h = new Hamt<Key, unknown>()
  const ends: DriverTask['end'][] = ['return', 'exit', 'throw', 'spin']
  const runs = Array.from({ length: workers }, (_, id) => {
    const progress = new SharedArrayBuffer(4)
    const end = ends[id % ends.length] as DriverTask['end']
    const w = new Worker(__filename, { workerData: { map: h.share(), id, end, progress } satisfies DriverTask })
    w.on('error', () => undefined) // the 'throw' worker's error is expected
    const exited = new Promise<number>((resolve) => w.once('exit', resolve))
    return { w, end, progress: new Int32Array(progress), exited }
  })
  for (const r of runs) {
    if (r.end === 'spin') {
      while (Atomics.load(r.progress, 0) < 200) {
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      await r.w.terminate()
    }
  }
  const codes = await Promise.all(runs.map((r) => r.exited))
  runs.forEach((r, i) => assert.equal(codes[i], r.end === 'return' || r.end === 'exit' ? 0 : 1, r.end))
  for (const r of runs) {
    if (r.end !== 'spin') {
      assert.equal(h.get(`w${runs.indexOf(r)}:done`), true)
    }
  }
  h.close()
  for (let i = 0; i < 5; i++) {
    gc()
    await turn()
  }
  const s = Hamt.stats()
  assert.equal(s.maps, 0, JSON.stringify(s))
  assert.equal(s.handles, 0, JSON.stringify(s))
  console.log(`valgrind-driver: done (${workers} workers, ${entries} entries): ${JSON.stringify(s)}`)
}

function worker(task: DriverTask): void {
  const h = Hamt.attach<Key, unknown>(task.map)
  const cells = new Int32Array(task.progress)
  everyMethod(200)
  for (let i = 0; i < 200 || task.end === 'spin'; i++) {
    h.set(`w${task.id}:${i % 50}`, { i })
    h.increment('count')
    if (i % 20 === 0) {
      void [...h.keys()].length
    }
    Atomics.store(cells, 0, i + 1)
  }
  h.set(`w${task.id}:done`, true)
  const held = [Hamt.attach(task.map), h.snapshot(), h.entries()]
  parentPort?.postMessage(held.length)
  if (task.end === 'exit') {
    process.exit(0)
  }
  if (task.end === 'throw') {
    throw new Error('the worker throws')
  }
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error('valgrind-driver: failed:', e)
    process.exit(1)
  })
} else {
  worker(workerData as DriverTask)
}
