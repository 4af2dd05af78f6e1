// Lifetimes: close, Symbol.dispose, use after close, finalizers under --expose-gc, and the
// release of a worker's handles and hazard records when it exits or is terminated, observed
// through Hamt.stats(). Every test is serial: the counters are the whole process's.
import test from 'ava'
import { Hamt, type HamtHandle, type Key } from 'concurrent-hamt'
import { Worker } from 'node:worker_threads'
import { collectUntil, gc, stats, throwsHamt, turn, until, workerPath } from './_helpers'
import type { HoldTask, Task } from './workers/protocol'

type AnyHamt = Hamt<Key, unknown>

/** Collects the garbage of earlier tests, then gives the counters to come back to. */
async function baseline(): Promise<{ maps: number; handles: number }> {
  for (let i = 0; i < 3; i++) {
    gc()
    await turn()
  }
  const s = stats()
  return { maps: s.maps, handles: s.handles }
}

/** Every method and accessor, on key 'k' with valid arguments. */
function uses(counter: { fnCalls: number }): [string, (h: AnyHamt) => unknown][] {
  return [
    ['get', (h) => h.get('k')],
    ['has', (h) => h.has('k')],
    ['set', (h) => h.set('k', 1)],
    ['delete', (h) => h.delete('k')],
    ['clear', (h) => h.clear()],
    ['size', (h) => h.size],
    ['setIfAbsent', (h) => h.setIfAbsent('new', 1)],
    ['swap', (h) => h.swap('k', 2)],
    ['compareAndSet', (h) => h.compareAndSet('k', 'v', 3)],
    [
      'update',
      (h) =>
        h.update('k', () => {
          counter.fnCalls++
          return 4
        }),
    ],
    ['increment', (h) => h.increment('n')],
    ['increment bigint', (h) => h.increment('n', 1n)],
    ['getMany', (h) => h.getMany(['k', 'n'])],
    ['setMany', (h) => h.setMany([['k', 5]])],
    ['setMany (iterable)', (h) => h.setMany(new Map([['k', 6]]))],
    ['snapshot', (h) => h.snapshot()],
    ['keys', (h) => h.keys()],
    ['values', (h) => h.values()],
    ['entries', (h) => h.entries()],
    ['Symbol.iterator', (h) => h[Symbol.iterator]()],
    ['spread', (h) => [...h]],
    [
      'forEach',
      (h) =>
        h.forEach(() => {
          counter.fnCalls++
        }),
    ],
  ]
}

test.serial('after close(), every method throws Error ERR_HAMT_CLOSED, and close is idempotent', (t) => {
  const h: AnyHamt = new Hamt()
  const other = Hamt.attach<Key, unknown>(h)
  h.set('k', 'v').set('n', 1)
  t.false(h.closed)
  h.close()
  t.true(h.closed)
  const counter = { fnCalls: 0 }
  for (const [name, use] of uses(counter)) {
    throwsHamt(t, () => use(h), Error, 'ERR_HAMT_CLOSED', 'closed')
    t.pass(name)
  }
  t.is(counter.fnCalls, 0, 'no callback ran on a closed handle')
  t.notThrows(() => h.close())
  t.notThrows(() => h[Symbol.dispose]())
  t.true(h.closed)
  // The other handle on the same map saw none of it and works on.
  t.is(other.get('k'), 'v')
  t.is(other.size, 2)
  other.set('after', true)
  const third = Hamt.attach<Key, unknown>(other)
  t.is(third.get('after'), true)
  third.close()
  other.close()
})

test.serial('a closed handle throws ERR_HAMT_CLOSED even when there is nothing to do (empty getMany/setMany)', (t) => {
  const h: AnyHamt = new Hamt()
  h.close()
  throwsHamt(t, () => h.getMany([]), Error, 'ERR_HAMT_CLOSED')
  throwsHamt(t, () => h.setMany([]), Error, 'ERR_HAMT_CLOSED')
})

test.serial('share() on a closed handle throws ERR_HAMT_CLOSED (its token may name nothing any more)', (t) => {
  const h: AnyHamt = new Hamt()
  h.close()
  throwsHamt(t, () => h.share(), Error, 'ERR_HAMT_CLOSED')
})

test.serial('Symbol.dispose closes, and `using` closes at the end of the block', (t) => {
  const h: AnyHamt = new Hamt()
  h[Symbol.dispose]()
  t.true(h.closed)
  throwsHamt(t, () => h.get('k'), Error, 'ERR_HAMT_CLOSED')
  let kept: AnyHamt | undefined
  const before = stats().handles
  {
    using scoped = new Hamt<Key, unknown>()
    scoped.set('a', 1)
    kept = scoped
    t.is(stats().handles, before + 1)
    t.false(scoped.closed)
  }
  t.true(kept.closed)
  t.is(stats().handles, before)
  // Also when the block throws.
  let inThrow: AnyHamt | undefined
  t.throws(() => {
    using s = new Hamt<Key, unknown>()
    inThrow = s
    throw new Error('leave the block')
  })
  t.true(inThrow?.closed)
})

test.serial('the map is freed when its last handle closes: stats drop back, and its token is stale', async (t) => {
  const base = await baseline()
  const h: AnyHamt = new Hamt()
  const token: HamtHandle = h.share()
  const handles = [h, Hamt.attach<Key, unknown>(token), Hamt.attach<Key, unknown>(h), Hamt.attach<Key, unknown>(token)]
  const snap = h.snapshot()
  t.is(stats().maps, base.maps + 2, 'the map and its snapshot')
  t.is(stats().handles, base.handles + 5)
  for (let i = 0; i < 1000; i++) {
    h.set(i, i)
  }
  for (let i = 0; i < handles.length; i++) {
    ;(handles[i] as AnyHamt).close()
    t.is(stats().handles, base.handles + 5 - (i + 1))
    if (i < handles.length - 1) {
      t.is(stats().maps, base.maps + 2, 'alive while a handle is open')
      const again = Hamt.attach<Key, unknown>(token)
      t.is(again.size, 1000)
      again.close()
    }
  }
  t.is(stats().maps, base.maps + 1, 'only the snapshot is left')
  throwsHamt(t, () => Hamt.attach(token), Error, 'ERR_HAMT_STALE_TOKEN')
  t.is(snap.size, 0, 'the snapshot was taken before the writes')
  const snapToken = snap.share()
  snap.close()
  t.deepEqual({ maps: stats().maps, handles: stats().handles }, base)
  throwsHamt(t, () => Hamt.attach(snapToken), Error, 'ERR_HAMT_STALE_TOKEN')
})

test.serial('finalizers release the references of handles dropped without close()', async (t) => {
  const base = await baseline()
  const kept: AnyHamt = new Hamt()
  kept.set('k', 'v')
  const token = kept.share()
  const dropped: HamtHandle[] = []
  ;(() => {
    for (let i = 0; i < 200; i++) {
      const own = new Hamt<number, number>()
      own.set(i, i)
      dropped.push(own.share())
      Hamt.attach(token).get('k')
      own.snapshot()
    }
  })()
  t.is(stats().handles, base.handles + 1 + 200 * 3)
  const released = await collectUntil(() => stats().handles === base.handles + 1 && stats().maps === base.maps + 1)
  t.true(released, `after gc: ${JSON.stringify(stats())}, baseline ${JSON.stringify(base)}`)
  for (const d of dropped.slice(0, 20)) {
    throwsHamt(t, () => Hamt.attach(d), Error, 'ERR_HAMT_STALE_TOKEN')
  }
  t.is(Hamt.attach<Key, unknown>(token).get('k'), 'v', 'the map with a handle left is alive')
  // The last handle collected frees the map.
  kept.close()
  const gone = await collectUntil(() => stats().handles === base.handles && stats().maps === base.maps)
  t.true(gone)
  throwsHamt(t, () => Hamt.attach(token), Error, 'ERR_HAMT_STALE_TOKEN')
})

test.serial('a handle dropped while its iterator lives: the iterator finishes, then everything is collected', async (t) => {
  const base = await baseline()
  let it: IterableIterator<[number, number]> | undefined
  ;(() => {
    const h = new Hamt<number, number>()
    for (let i = 0; i < 1000; i++) {
      h.set(i, i)
    }
    it = h.entries()
  })()
  await collectUntil(() => stats().handles === base.handles)
  let n = 0
  for (const [k, v] of it ?? []) {
    t.is(k, v)
    n++
  }
  t.is(n, 1000)
  t.deepEqual({ maps: stats().maps, handles: stats().handles }, base)
})

test.serial('a constructor that throws on its entries leaves no reference behind (after gc)', async (t) => {
  const base = await baseline()
  for (let i = 0; i < 50; i++) {
    t.throws(() => new Hamt<string, unknown>([['ok', 1], ['bad', () => 1]]), { code: 'ERR_HAMT_INVALID_VALUE' })
  }
  const released = await collectUntil(() => stats().handles === base.handles && stats().maps === base.maps)
  t.true(released, JSON.stringify(stats()))
})

// ---------------------------------------------------------------------------------------------
// Workers

interface Ended {
  readonly code: number
  readonly error: unknown
}

/** Starts hold.js; resolves when its handles are open. */
async function hold(h: AnyHamt, mode: HoldTask['mode'], handles = 5): Promise<{ worker: Worker; control: Int32Array; ended: Promise<Ended> }> {
  const sab = new SharedArrayBuffer(12)
  const control = new Int32Array(sab)
  const worker = new Worker(workerPath('hold'), { workerData: { map: h.share(), handles, mode, control: sab } satisfies HoldTask })
  let error: unknown
  worker.on('error', (e) => {
    error = e
  })
  const ended = new Promise<Ended>((resolve) => worker.once('exit', (code) => resolve({ code, error })))
  const opened = await until(() => Atomics.load(control, 0) === 1 || error !== undefined, 5000)
  if (!opened) {
    throw new Error(`the ${mode} worker did not start`)
  }
  return { worker, control, ended }
}

test.serial('a worker\'s exit releases its handles, its maps and its hazard records: return, process.exit, throw', async (t) => {
  const base = await baseline()
  const records = stats().hazardRecordsInUse
  const h: AnyHamt = new Hamt()
  for (const mode of ['return', 'exit', 'throw'] as const) {
    const w = await hold(h, mode, 5)
    const ended = await w.ended
    t.is(ended.code, mode === 'throw' ? 1 : 0, mode)
    t.is(mode === 'throw', ended.error instanceof Error, `${mode}: ${String(ended.error)}`)
    const released = await until(() => stats().handles === base.handles + 1 && stats().maps === base.maps + 1, 200)
    t.true(released, `${mode}: ${JSON.stringify(stats())}, baseline ${JSON.stringify(base)} plus one map`)
    t.is(stats().hazardRecordsInUse, records, `${mode}: hazard records handed back`)
  }
  t.is(h.get('hold:workers'), 3, 'the workers\' writes stay')
  h.close()
  t.deepEqual({ maps: stats().maps, handles: stats().handles }, base)
})

test.serial('worker.terminate() releases the worker\'s handles: while it waits, and while it writes', async (t) => {
  const base = await baseline()
  const records = stats().hazardRecordsInUse
  const h: AnyHamt = new Hamt()
  for (const mode of ['wait', 'spin'] as const) {
    const w = await hold(h, mode, 8)
    t.is(stats().handles, base.handles + 1 + 8 + 2)
    if (mode === 'spin') {
      await until(() => Atomics.load(w.control, 2) > 1000, 5000)
    }
    await w.worker.terminate()
    const ended = await w.ended
    t.is(ended.code, 1, `${mode}: terminated`)
    const released = await until(() => stats().handles === base.handles + 1 && stats().maps === base.maps + 1, 200)
    t.true(released, `${mode}: ${JSON.stringify(stats())}`)
    t.is(stats().hazardRecordsInUse, records, `${mode}: hazard records handed back`)
  }
  t.is(h.get('hold:workers'), 2)
  const count = h.get('spin:count')
  t.true(typeof count === 'number' && count > 1000)
  t.true(h.size >= 2)
  h.close()
  t.deepEqual({ maps: stats().maps, handles: stats().handles }, base)
})

test.serial('terminate() while the worker is inside update\'s fn or a serializer getter: nothing written, references released', async (t) => {
  const base = await baseline()
  const records = stats().hazardRecordsInUse
  const h: AnyHamt = new Hamt()
  h.set('k', 'before')
  for (const kind of ['stuck-in-update', 'stuck-in-serialize'] as const) {
    const sab = new SharedArrayBuffer(8)
    const control = new Int32Array(sab)
    const worker = new Worker(workerPath('tasks'), { workerData: { kind, map: h.share(), key: 'k', control: sab } satisfies Task })
    worker.on('error', () => {
      // Termination may surface as an error event: what matters is below.
    })
    const ended = new Promise<number>((resolve) => worker.once('exit', resolve))
    t.true(await until(() => Atomics.load(control, 0) === 1, 5000), `${kind}: the worker got into its callback`)
    // While it is blocked inside the native call, this thread writes the same key.
    h.set('k', `during ${kind}`)
    t.is(h.get('k'), `during ${kind}`)
    await worker.terminate()
    await ended
    t.is(h.get('k'), `during ${kind}`, `${kind}: the blocked write never landed`)
    const released = await until(() => stats().handles === base.handles + 1, 200)
    t.true(released, `${kind}: ${JSON.stringify(stats())}`)
    t.is(stats().hazardRecordsInUse, records, `${kind}: hazard records handed back`)
    t.is(h.update('k', () => 'after'), 'after')
  }
  h.close()
  t.deepEqual({ maps: stats().maps, handles: stats().handles }, base)
})

test.serial('hazard records in use do not grow with the number of workers started and ended', async (t) => {
  await baseline()
  const h: AnyHamt = new Hamt()
  h.set('warm', 1)
  const records = stats().hazardRecordsInUse
  const before = stats().hazardRecords
  const allocated: number[] = []
  const modes: HoldTask['mode'][] = ['return', 'exit', 'wait', 'spin']
  const rounds = 8
  for (let round = 0; round < rounds; round++) {
    // Two at a time, ended in each way.
    const pair = await Promise.all([hold(h, modes[round % 4] as HoldTask['mode'], 2), hold(h, modes[(round + 1) % 4] as HoldTask['mode'], 2)])
    for (const w of pair) {
      void w.worker.terminate()
    }
    await Promise.all(pair.map((w) => w.ended))
    t.is(stats().hazardRecordsInUse, records, `round ${round}: records in use back to ${records}`)
    allocated.push(stats().hazardRecords)
  }
  t.log(`hazard records allocated: ${before} before, ${allocated.join(', ')} after each round; in use: ${records}`)
  // A thread takes about eight records; at most two workers ran at once. Had each worker kept
  // its records, 2 * rounds workers would have allocated some 8 * 2 * rounds.
  const growth = (allocated[rounds - 1] ?? 0) - before
  t.true(growth <= 3 * 9, `${growth} records allocated for ${2 * rounds} workers, two at a time`)
  t.is(h.get('hold:workers'), 2 * rounds)
  h.close()
})

test.serial('each handle reports its map to V8, and gives the report back when released', async (t) => {
  await baseline()
  const before = Hamt.stats().reportedMemory
  const big = new Hamt<number, string>()
  for (let i = 0; i < 100_000; i++) {
    big.set(i, 'value of sixteen')
  }
  const own = Hamt.stats().reportedMemory - before
  // The estimate is per entry: at least the entry count times some bytes, at most a few KiB each.
  t.true(own > 100_000 * 64 && own < 100_000 * 4096, `one handle on 10^5 entries reports ${own} bytes`)
  // A small handle on the big map weighs what it keeps alive: the whole map.
  const small = Hamt.attach<number, string>(big)
  const two = Hamt.stats().reportedMemory - before
  t.true(two > own * 1.5, `a second handle adds about the same again (${own} -> ${two})`)
  small.close()
  t.is(Hamt.stats().reportedMemory - before, own, 'close gives its report back')
  big.clear()
  for (let i = 0; i < 2048; i++) {
    big.set(-1, 'x') // writes bring the estimate up to date
  }
  const cleared = Hamt.stats().reportedMemory - before
  t.true(cleared < own / 10, `after clear() and some writes the report shrinks (${own} -> ${cleared})`)
  big.close()
  t.is(Hamt.stats().reportedMemory, before, 'every report given back')
})
