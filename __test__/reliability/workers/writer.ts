// The writer of terminate-writes.test.ts: writes its own keys forever (until terminated), each
// with a different kind of operation and value, and reports each write as done through a
// SharedArrayBuffer (Atomics.store after the write returned), so that the test can check, at
// whatever instant the termination lands, that every reported write is in the map.
import { Hamt, type Key } from 'concurrent-hamt'
import { workerData } from 'node:worker_threads'
import { expected, writerKey, type WriterTask } from './writes'

const task = workerData as WriterTask
const cells = new Int32Array(task.progress)
const h = Hamt.attach<Key, unknown>(task.map)
const id = task.id

for (let i = 0; ; i++) {
  const k = writerKey(id, i)
  const v = expected(id, i)
  switch (i % 8) {
    case 0:
      h.set(k, v)
      break
    case 1:
      h.set(k, v)
      break
    case 2:
      h.setIfAbsent(k, v)
      break
    case 3:
      h.swap(k, v)
      break
    case 4:
      h.update(k, (cur) => (cur === undefined ? v : cur))
      break
    case 5:
      h.increment(k, v as number)
      break
    case 6:
      // Also rewrites an earlier key with the value it has: a replacement, not a new entry.
      h.setMany(i >= 6 ? [[k, v], [writerKey(id, i - 6), expected(id, i - 6)]] : [[k, v]])
      break
    case 7:
      h.compareAndSet(k, undefined, v)
      break
  }
  Atomics.store(cells, 3 * id, i + 1)
  // A short-lived key, set and deleted again: it is absent or holds a count this worker wrote.
  if (i % 3 === 0) {
    h.set(`t${id}`, i)
    h.delete(`t${id}`)
  }
  // A counter every worker increments: reported after each increment returned.
  if (i % 5 === 0) {
    h.increment('shared')
    Atomics.add(cells, 3 * id + 1, 1)
  }
  if (i % 64 === 63) {
    // Leave an iterator open part-way (a cursor on a snapshot, released by the termination).
    const it = h.keys()
    it.next()
    Atomics.add(cells, 3 * id + 2, 1)
  }
}
