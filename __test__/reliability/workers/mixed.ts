// The worker of garbage-bound.test.ts: a sustained mixed workload on the shared map until told
// to stop: get, set, delete, update, increment, swap, compareAndSet, setIfAbsent, getMany and
// setMany on a fixed key set, writable snapshots taken, written and dropped (closed, or left
// to the garbage collector), and iterations (whole, or abandoned part-way).
import { Hamt, type Key } from 'concurrent-hamt'
import { workerData } from 'node:worker_threads'
import type { Shared } from '../../workers/protocol'

export interface MixedTask {
  readonly map: Shared
  readonly id: number
  readonly keys: number
  readonly seed: number
  /** Slot 0: set to 1 to stop; slot 1 + id: this worker's operations done. */
  readonly control: SharedArrayBuffer
}

const task = workerData as MixedTask
const ctl = new Int32Array(task.control)
const h = Hamt.attach<Key, unknown>(task.map)
let seed = task.seed >>> 0
function rand(n: number): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return (seed >>> 8) % n
}
const key = (n: number): string => `k${n}`

function step(i: number): void {
  const k = key(rand(task.keys))
  switch (rand(20)) {
    case 0:
    case 1:
    case 2:
      h.get(k)
      break
    case 3:
    case 4:
      h.set(k, i)
      break
    case 5:
      h.set(k, { i, by: task.id, pad: 'x'.repeat(rand(64)) })
      break
    case 6:
    case 7:
      h.delete(k)
      break
    case 8:
      h.update(k, (cur) => (typeof cur === 'number' ? cur + 1 : 0))
      break
    case 9:
      // Another worker may store a string or an object under `k` at any moment (cases 5, 10
      // and 16), so the value an increment meets is not known in advance: the only error it
      // may throw is the documented one for a value that is not a counter.
      try {
        h.increment(k)
      } catch (e) {
        if (!(e instanceof TypeError && (e as { code?: unknown }).code === 'ERR_HAMT_NOT_A_COUNTER')) {
          throw e
        }
      }
      break
    case 10:
      h.swap(k, `s${i}`)
      break
    case 11:
      h.compareAndSet(k, h.get(k), i)
      break
    case 12:
      h.setIfAbsent(k, i)
      break
    case 13:
      h.getMany([k, key(rand(task.keys)), key(rand(task.keys))])
      break
    case 14:
      h.setMany([[k, i], [key(rand(task.keys)), i]])
      break
    case 15: {
      // A writable snapshot, written and closed: dropping it retires what only it held.
      const s = h.snapshot()
      for (let j = 0; j < 8; j++) {
        s.set(key(rand(task.keys)), -j)
      }
      s.close()
      break
    }
    case 16: {
      // A snapshot left to the garbage collector.
      h.snapshot().set(k, 'dropped')
      break
    }
    case 17: {
      let n = 0
      for (const _ of h.keys()) {
        if (++n > 40) {
          break
        }
      }
      break
    }
    case 18:
      if (rand(8) === 0) {
        let n = 0
        h.forEach(() => {
          n++
        })
      } else {
        h.get(k)
      }
      break
    default:
      h.has(k)
  }
}

for (let i = 0; Atomics.load(ctl, 0) === 0; i++) {
  step(i)
  Atomics.add(ctl, 1 + task.id, 1)
}
h.close()
