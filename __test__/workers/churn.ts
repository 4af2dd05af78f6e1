// A worker that writes forever with every kind of operation, until it is terminated. Every
// value it writes says who wrote it, and for which key, so that the test can check that the
// map holds only values some worker wrote, whatever the moment of termination.
import { Hamt, type Key } from 'concurrent-hamt'
import { workerData } from 'node:worker_threads'
import type { ChurnTask } from './protocol'

const task = workerData as ChurnTask
const progress = new Int32Array(task.progress)
const h = Hamt.attach<Key, unknown>(task.map)
let seed = task.seed >>> 0
function rand(n: number): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return seed % n
}

/** The values: a string for 's' keys, a record for 'o' and 'u' keys. */
function str(key: string, seq: number): string {
  return `${key}|${task.id}|${seq}`
}
function rec(key: string, seq: number): { key: string; id: number; seq: number; check: number } {
  return { key, id: task.id, seq, check: task.id * 1_000_003 + seq }
}

for (let seq = 0; ; seq++) {
  const n = rand(task.keys)
  const s = `s:${n}`
  const o = `o:${n}`
  switch (rand(12)) {
    case 0:
      h.set(s, str(s, seq))
      break
    case 1:
      h.set(o, rec(o, seq))
      break
    case 2:
      h.swap(o, rec(o, seq))
      break
    case 3: {
      const cur = h.get(s)
      h.compareAndSet(s, cur, str(s, seq))
      break
    }
    case 4:
      h.update(`u:${n}`, () => rec(`u:${n}`, seq))
      break
    case 5:
      h.increment(`n:${n}`)
      break
    case 6:
      h.setMany(Array.from({ length: 8 }, (_, i): [string, string] => [`s:${(n + i) % task.keys}`, str(`s:${(n + i) % task.keys}`, seq)]))
      break
    case 7:
      h.delete(rand(2) === 0 ? s : o)
      break
    case 8:
      h.setIfAbsent(o, rec(o, seq))
      break
    case 9: {
      // Leave a cursor open, part-way through.
      let i = 0
      for (const _ of h.keys()) {
        if (++i > 50) {
          break
        }
      }
      break
    }
    case 10:
      h.snapshot().close()
      break
    case 11:
      h.getMany([s, o, `u:${n}`, `n:${n}`])
      break
  }
  Atomics.add(progress, task.id, 1)
}
