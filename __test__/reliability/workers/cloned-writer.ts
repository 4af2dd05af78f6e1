// A worker of terminate-writes.test.ts: writes values that go through structured clone (which
// runs JavaScript inside the call, so a termination can land in the middle of one), each to a
// key of its own, and reports each write in slot 0 after it returned, until terminated.
import { Hamt, type Key } from 'concurrent-hamt'
import { workerData } from 'node:worker_threads'
import type { Shared } from '../../workers/protocol'
import { clonedValue } from './writes'

export interface ClonedWriterTask {
  readonly map: Shared
  readonly progress: SharedArrayBuffer
  /** Keys are `base + i`. */
  readonly base: number
}

const task = workerData as ClonedWriterTask
const cells = new Int32Array(task.progress)
const h = Hamt.attach<Key, unknown>(task.map)
for (let i = 0; ; i++) {
  h.set(task.base + i, clonedValue(i))
  Atomics.store(cells, 0, i + 1)
}
