// The worker of handle-churn.test.ts: creates and drops `count` handles in every way (attach
// and close, snapshot and close, new maps shared and attached, handles and snapshots dropped
// without close for the garbage collector to finalize, iterators abandoned part-way), checks
// that the tokens of maps it let go are stale, then keeps collecting garbage until told to
// stop, so that the test sees the finalizers of this thread release what it dropped while the
// thread is still alive.
import { Hamt, type Key } from 'concurrent-hamt'
import { parentPort, workerData } from 'node:worker_threads'
import type { Shared } from '../../workers/protocol'

export interface HandlesTask {
  readonly map: Shared
  readonly id: number
  /** Handles to create (and drop). */
  readonly count: number
  /** Slot 0: set to 1 by the test when the worker may close its last handle and exit. */
  readonly control: SharedArrayBuffer
}

export interface HandlesDone {
  readonly created: number
  readonly closed: number
  readonly dropped: number
  /** Tokens of maps it closed, checked stale (attach threw ERR_HAMT_STALE_TOKEN). */
  readonly stale: number
  /** Anything unexpected. */
  readonly problems: string[]
}

const task = workerData as HandlesTask
const control = new Int32Array(task.control)
const collect = (globalThis as { gc?: () => void }).gc
const common = Hamt.attach<Key, unknown>(task.map)
const problems: string[] = []

function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function codeOf(e: unknown): unknown {
  return typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined
}

const counts = { created: 0, closed: 0, dropped: 0, stale: 0 }

/**
 * Operations `from` to `to`, in a plain function: the suspended frame of an async function can
 * keep its last locals reachable across an await (V8 keeps the register file of a suspended
 * frame), which would hold one dropped handle per thread past every collection.
 */
function batch(from: number, to: number): void {
  let { created, closed, dropped, stale } = counts
  for (let i = from; i < to && created < task.count; i++) {
    switch (i % 7) {
      case 0: {
        const a = Hamt.attach<Key, unknown>(common.share())
        a.get(`w${task.id}`)
        a.close()
        created++
        closed++
        break
      }
      case 1: {
        const s = common.snapshot()
        s.set('only in the snapshot', i)
        s.close()
        created++
        closed++
        break
      }
      case 2: {
        const own = new Hamt<number, string>()
        own.set(i, 'own')
        const token = own.share()
        const again = Hamt.attach<number, string>(token)
        if (again.get(i) !== 'own') {
          problems.push(`attach(share()) of a new map does not see its entry (${i})`)
        }
        again.close()
        own.close()
        created += 2
        closed += 2
        try {
          Hamt.attach(token).close()
          problems.push(`the token of a closed map attached (${i})`)
        } catch (e) {
          if (codeOf(e) === 'ERR_HAMT_STALE_TOKEN') {
            stale++
          } else {
            problems.push(`attach of a closed map's token threw ${String(e)}`)
          }
        }
        break
      }
      case 3: {
        // Dropped without close: the finalizer releases it.
        Hamt.attach<Key, unknown>(common).has('x')
        created++
        dropped++
        break
      }
      case 4: {
        const s = common.snapshot()
        s.get(`w${task.id}`)
        created++
        dropped++
        break
      }
      case 5: {
        const own = new Hamt<number, number>([[1, 1], [2, 2], [3, 3]])
        const it = own.entries()
        it.next()
        created++
        dropped++
        break
      }
      case 6: {
        common.set(`w${task.id}`, i)
        if (i % 70 === 6) {
          common.delete(`w${task.id}:${i % 700}`)
          common.set(`w${task.id}:${(i + 70) % 700}`, { i })
        }
        break
      }
    }
  }
  Object.assign(counts, { created, closed, dropped, stale })
}

async function main(): Promise<void> {
  if (typeof collect !== 'function') {
    problems.push('no gc() in the worker (run with --expose-gc)')
  }
  for (let i = 0; counts.created < task.count; i += 3000) {
    batch(i, i + 3000)
    collect?.()
    await turn()
  }
  parentPort?.postMessage({ ...counts, problems } satisfies HandlesDone)
  // Keep collecting (finalizers run on this thread, between turns) until the test is done.
  while (Atomics.load(control, 0) === 0) {
    collect?.()
    await turn()
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  common.close()
}

void main()
