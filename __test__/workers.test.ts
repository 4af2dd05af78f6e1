// Real worker_threads on one map: disjoint and overlapping writes, exact concurrent
// increments and updates, update re-running under contention, snapshots consistent under
// concurrent writes, a worker of a worker, and a Hamt sent as it is.
import test from 'ava'
import { Hamt, type HamtHandle, type Key } from 'concurrent-hamt'
import { Worker } from 'node:worker_threads'
import { codeOf, runWorker, show, until, workerPath, workerResult } from './_helpers'
import type {
  CasResult,
  ChainResult,
  ClaimResult,
  ContendResult,
  DisjointResult,
  EchoResult,
  IncrementResult,
  NestedResult,
  SwapResult,
  Task,
  UpdateResult,
} from './workers/protocol'

function sync(cells = 4): SharedArrayBuffer {
  return new SharedArrayBuffer(4 * cells)
}

function runTasks<R>(tasks: Task[]): Promise<R[]> {
  return Promise.all(tasks.map((task) => workerResult<R>('tasks', task)))
}

test('workers on disjoint keys see each other\'s writes, and so does the main thread', async (t) => {
  const h = new Hamt<string, unknown>()
  const workers = 3
  const perWorker = 2000
  const s = sync()
  const results = await runTasks<DisjointResult>(
    Array.from({ length: workers }, (_, id): Task => ({ kind: 'disjoint', map: h.share(), id, workers, perWorker, sync: s })),
  )
  for (const r of results) {
    t.deepEqual(r.wrong, [])
    t.is(r.seen, workers * perWorker)
  }
  t.is(h.size, workers * perWorker)
  t.deepEqual(h.get('w2:10'), { id: 2, i: 10 })
  t.is(h.get('w1:11'), '1/11')
  t.is([...h.keys()].length, workers * perWorker)
  h.close()
})

test('overlapping setIfAbsent: each key has exactly one winner, and every thread sees the same winners', async (t) => {
  const h = new Hamt<string, number>()
  const workers = 4
  const keys = 3000
  const s = sync()
  const results = await runTasks<ClaimResult>(
    Array.from({ length: workers }, (_, id): Task => ({ kind: 'claim', map: h.share(), id, workers, keys, sync: s })),
  )
  const winner = new Map<number, number>()
  results.forEach((r, id) => {
    for (const k of r.won) {
      t.false(winner.has(k), `key ${k} won twice`)
      winner.set(k, id)
    }
  })
  t.is(winner.size, keys, 'every key won once')
  const main = h.getMany(Array.from({ length: keys }, (_, i) => `claim:${i}`))
  for (let k = 0; k < keys; k++) {
    t.is(main[k], winner.get(k))
  }
  for (const r of results) {
    t.deepEqual(r.view, main, 'every worker sees the same winners as the main thread')
  }
  t.is(h.size, keys)
  h.close()
})

test('overlapping swap: every value written is returned by exactly one swap or is the final value', async (t) => {
  const h = new Hamt<string, string>()
  const workers = 4
  const keys = 16
  const rounds = 3000
  const s = sync()
  const results = await runTasks<SwapResult>(
    Array.from({ length: workers }, (_, id): Task => ({ kind: 'swap', map: h.share(), id, keys, rounds, sync: s, workers })),
  )
  const seen = new Map<string, number>()
  let undefinedCount = 0
  const count = (v: string | undefined): void => {
    if (v === undefined) {
      undefinedCount++
    } else {
      seen.set(v, (seen.get(v) ?? 0) + 1)
    }
  }
  for (const r of results) {
    t.is(r.returned.length, rounds)
    r.returned.forEach(count)
  }
  for (const v of h.values()) {
    count(v)
  }
  t.is(undefinedCount, keys, 'each key\'s first swap, and only it, found no entry')
  t.is(seen.size, workers * rounds, 'every value written shows up')
  const twice = [...seen].filter(([, n]) => n !== 1)
  t.deepEqual(twice, [], 'no value shows up twice (lost or duplicated swaps)')
  // And each value came back through its own key.
  for (const [v] of seen) {
    const [id, j] = v.split(':').map(Number) as [number, number]
    t.true(id >= 0 && id < workers && j >= 0 && j < rounds)
  }
  t.is(h.size, keys)
  h.close()
})

test('concurrent increments are exact: 4 workers x 10^4 on shared counters, and each result is unique', async (t) => {
  const h = new Hamt<string, number | bigint>()
  const workers = 4
  const n = 10_000
  const counters = 3
  const s = sync()
  const results = await runTasks<IncrementResult>(
    Array.from({ length: workers }, (_, id): Task => ({ kind: 'increment', map: h.share(), id, n, counters, sync: s, workers })),
  )
  for (let c = 0; c < counters; c++) {
    const perWorker = Math.ceil((n - c) / counters)
    t.is(h.get(`ctr:${c}`), workers * perWorker, `counter ${c}`)
    // Each increment returned the counter's value at its own linearization point: all distinct, 1..total.
    const all = results.flatMap((r) => r.numbers[c] ?? []).sort((a, b) => a - b)
    t.is(all.length, workers * perWorker)
    t.true(
      all.every((v, i) => v === i + 1),
      `counter ${c}: the returned values are not exactly 1..${workers * perWorker}`,
    )
  }
  const bigCount = workers * Math.ceil(n / 4)
  t.is(h.get('big'), BigInt(bigCount) * (2n ** 64n + 1n))
  const bigs = results.flatMap((r) => r.bigs).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  t.true(bigs.every((v, i) => v === BigInt(i + 1) * (2n ** 64n + 1n)))
  h.close()
})

test('concurrent updates are exact (a number and a structured record), with fn re-run as needed', async (t) => {
  const h = new Hamt<string, unknown>()
  const workers = 4
  const n = 2000
  const s = sync()
  const results = await runTasks<UpdateResult>(
    Array.from({ length: workers }, (_, id): Task => ({ kind: 'update', map: h.share(), id, n, sync: s, workers })),
  )
  t.is(h.get('u:count'), workers * n)
  const rec = h.get('u:record') as { n: number; by: number[] }
  t.is(rec.n, workers * n)
  for (const key of ['counts', 'records'] as const) {
    const all = results.flatMap((r) => r[key]).sort((a, b) => a - b)
    t.true(
      all.every((v, i) => v === i + 1),
      `${key}: each update's result should be unique, 1..${workers * n}`,
    )
  }
  const runs = results.reduce((a, r) => a + r.runs, 0)
  t.true(runs >= 2 * workers * n, `fn ran ${runs} times for ${2 * workers * n} updates`)
  t.log(`update: ${runs - 2 * workers * n} re-runs of fn for ${2 * workers * n} updates`)
  h.close()
})

test('a counter made of get + compareAndSet loops in 4 workers is exact', async (t) => {
  const h = new Hamt<string, number>()
  const workers = 4
  const n = 2500
  const s = sync()
  const results = await runTasks<CasResult>(Array.from({ length: workers }, (): Task => ({ kind: 'cas-counter', map: h.share(), n, sync: s, workers })))
  t.is(h.get('cas'), workers * n)
  t.log(`compareAndSet: ${results.reduce((a, r) => a + r.retries, 0)} failed attempts for ${workers * n} increments`)
  h.close()
})

test('update re-runs fn on the new value when another thread changes the entry meanwhile', async (t) => {
  const h = new Hamt<string, number>()
  h.set('k', 1)
  const control = sync(1)
  const [updater, writer] = await runTasks<ContendResult>([
    { kind: 'contend-updater', map: h.share(), key: 'k', control },
    { kind: 'contend-writer', map: h.share(), key: 'k', control },
  ])
  t.deepEqual(updater?.args, [1, 7], 'fn ran on 1, then again on the 7 the other thread wrote')
  t.is(updater?.result, 107)
  t.is(writer?.result, null)
  t.is(h.get('k'), 107)
  h.close()
})

/**
 * Checks the writers' chains in one consistent view `m` (see the 'chain' task): values
 * non-increasing along each chain and at most one apart, and the presence chain in the state
 * that the value chain's round implies. A copy made key by key while writers run breaks it.
 */
function chainViolation(m: Map<Key, unknown>, writers: number, length: number): string | null {
  for (let w = 0; w < writers; w++) {
    const v: number[] = []
    const p: boolean[] = []
    for (let i = 0; i < length; i++) {
      const x = m.get(`c${w}:${i}`) ?? 0
      if (typeof x !== 'number') {
        return `c${w}:${i} is ${show(x)}`
      }
      v.push(x)
      p.push(m.has(`p${w}:${i}`))
    }
    const first = v[0] as number
    const last = v[length - 1] as number
    for (let i = 1; i < length; i++) {
      if ((v[i] as number) > (v[i - 1] as number)) {
        return `writer ${w}: c${i} = ${v[i]} after c${i - 1} = ${v[i - 1]}`
      }
    }
    if (last < first - 1) {
      return `writer ${w}: values ${first}..${last} more than one round apart`
    }
    const present = p.filter(Boolean).length
    const prefix = p.every((x, i) => x === i < present)
    const suffix = p.every((x, i) => x === i >= length - present)
    let ok: boolean
    if (first === last) {
      // Round `first` wrote its values; its presence pass may be under way.
      ok = first === 0 ? present === 0 : first % 2 === 1 ? prefix : suffix
    } else {
      // Round `first` is writing its values: presence is as round `last` left it.
      ok = last === 0 ? present === 0 : last % 2 === 1 ? present === length : present === 0
    }
    if (!ok) {
      return `writer ${w}: values in rounds ${first}/${last} but presence ${p.map((x) => (x ? 1 : 0)).join('')}`
    }
  }
  return null
}

test('snapshots and iteration during concurrent writes see one consistent state', async (t) => {
  const h = new Hamt<Key, unknown>()
  const filler = 6000
  for (let i = 0; i < filler; i++) {
    h.set(i, `filler ${i}`)
  }
  const writers = 2
  const length = 40
  const control = sync(1 + writers)
  const cells = new Int32Array(control)
  const done = runTasks<ChainResult>(
    Array.from({ length: writers }, (_, id): Task => ({ kind: 'chain', map: h.share(), id, length, control })),
  )
  const started = await until(() => cells.slice(1).every((r) => r >= 2), 5000)
  t.true(started, 'the writers started')
  const views = 24
  const states = new Set<string>()
  try {
    for (let s = 0; s < views; s++) {
      const m = new Map<Key, unknown>()
      let count = 0
      switch (s % 3) {
        case 0:
          for (const [k, v] of h) {
            m.set(k, v)
            count++
          }
          break
        case 1:
          h.forEach((v, k) => {
            m.set(k, v)
            count++
          })
          break
        case 2: {
          const snap = h.snapshot()
          const size = snap.size
          for (const [k, v] of snap.entries()) {
            m.set(k, v)
            count++
          }
          t.is(size, count, 'snapshot().size is exact under concurrent writes')
          snap.close()
          break
        }
      }
      t.is(m.size, count, 'no key twice')
      let fillerSeen = 0
      for (let i = 0; i < filler; i++) {
        if (m.get(i) === `filler ${i}`) {
          fillerSeen++
        }
      }
      t.is(fillerSeen, filler, 'the filler is all there')
      const violation = chainViolation(m, writers, length)
      t.is(violation, null, `view ${s}: ${violation ?? ''}`)
      states.add(Array.from({ length: writers }, (_, w) => String(m.get(`c${w}:0`))).join(','))
    }
  } finally {
    Atomics.store(cells, 0, 1)
  }
  const results = await done
  for (const r of results) {
    t.true(r.rounds >= 2)
  }
  t.is(chainViolation(new Map(h), writers, length), null, 'the final state')
  t.log(`${states.size} distinct states seen in ${views} views; writers did ${results.map((r) => r.rounds).join(', ')} rounds`)
  h.close()
})

test('attach in a worker of a worker (three levels), passing a Hamt and a token', async (t) => {
  const h = new Hamt<string, number>()
  h.set('depth0', 0)
  const r = await workerResult<NestedResult>('nested', { map: h.share(), depth: 1, maxDepth: 3 })
  let level: NestedResult | null = r
  let depth = 1
  while (level !== null) {
    t.is(level.depth, depth)
    t.deepEqual(level.sawParents, Array.from({ length: depth }, () => true), `level ${depth} saw its parents' writes`)
    t.is(level.sawChild, depth < 3 ? true : null, `level ${depth} saw its child's write`)
    t.is(level.receivedKind, depth === 2 ? 'hamt' : 'token')
    level = level.child
    depth++
  }
  t.is(depth, 4)
  t.deepEqual(h.getMany(['depth0', 'depth1', 'depth2', 'depth3']), [0, 1, 2, 3])
  h.close()
})

test('a Hamt passed through workerData or postMessage arrives as a plain object that attach accepts', async (t) => {
  const h = new Hamt<Key, unknown>()
  h.set('main', 'from main')
  const echo = await workerResult<EchoResult>('tasks', { kind: 'echo', map: h as unknown as HamtHandle })
  t.deepEqual(echo.received, { handle: h.share() }, 'the worker got { handle }')
  t.is(echo.sizeSeen, 7)
  t.is(h.get('echo'), 'from the worker')
  // Values written in another thread come back as what they were.
  t.true(Buffer.isBuffer(h.get('echo:buffer')))
  t.deepEqual(h.get('echo:buffer'), Buffer.from('buf'))
  t.is(Object.getPrototypeOf(h.get('echo:u8')), Uint8Array.prototype)
  t.deepEqual(h.get('echo:u8'), new Uint8Array([1, 2]))
  t.deepEqual(h.get('echo:date'), new Date(1234))
  t.deepEqual(h.get('echo:map'), new Map([[1n, new Set(['s'])]]))
  t.is(h.get(new Uint8Array([0xec, 0x40])), 2n ** 65n)
  // What the worker posted back (its own Hamt) is a plain object too.
  t.false(echo.back instanceof Hamt)
  t.deepEqual(echo.back, { handle: h.share() })
  const back = Hamt.attach<Key, unknown>(echo.back as { handle: HamtHandle })
  t.is(back.get('echo'), 'from the worker')
  back.close()
  // Through postMessage, both ways, with the worker alive.
  const w = new Worker(workerPath('tasks'), { workerData: { kind: 'echo', map: h.share() } satisfies Task })
  const exited = new Promise((resolve) => w.once('exit', resolve)) // listening from the start: exit may follow the message at once
  const msg = await new Promise<EchoResult>((resolve, reject) => {
    w.once('message', resolve)
    w.once('error', reject)
  })
  t.deepEqual(msg.received, h.share())
  const viaMessage = Hamt.attach<string, string>(msg.back as { handle: HamtHandle })
  t.is(viaMessage.size, 7)
  viaMessage.close()
  await exited
  h.close()
})

test('a worker attaching a token whose map is gone gets ERR_HAMT_STALE_TOKEN, and the process goes on', async (t) => {
  const h = new Hamt()
  const token = h.share()
  h.close()
  let err: unknown
  try {
    await runWorker('tasks', { kind: 'echo', map: token } satisfies Task)
  } catch (e) {
    err = e
  }
  t.is(codeOf(err), 'ERR_HAMT_STALE_TOKEN', `the worker failed with ${String(err)}`)
  const after = new Hamt<string, number>()
  after.set('alive', 1)
  t.is(after.get('alive'), 1)
  after.close()
})
