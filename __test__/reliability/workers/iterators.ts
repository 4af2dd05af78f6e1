// A worker of terminate-writes.test.ts: opens iterators without closing them (started or not,
// left for the garbage collector), forever, counting them in slot 0, until terminated.
import { Hamt, type Key } from 'concurrent-hamt'
import { workerData } from 'node:worker_threads'
import type { Shared } from '../../workers/protocol'

export interface IteratorsTask {
  readonly map: Shared
  readonly progress: SharedArrayBuffer
}

const task = workerData as IteratorsTask
const cells = new Int32Array(task.progress)
const h = Hamt.attach<Key, unknown>(task.map)
for (let i = 0; ; i++) {
  const it = i % 3 === 0 ? h.entries() : h.keys()
  if (i % 2 === 0) {
    it.next()
  }
  if (i % 50 === 0) {
    h.set(`i${i % 7}`, i)
  }
  Atomics.store(cells, 0, i + 1)
}
