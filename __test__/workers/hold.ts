// A worker that opens handles (attached ones, its own maps, a snapshot, an open iterator) and
// leaves them open, then ends as told: returns, process.exit(), throws, or spins writing until
// it is terminated.
import { Hamt, type Key } from 'concurrent-hamt'
import { workerData } from 'node:worker_threads'
import type { HoldTask } from './protocol'
import { signal } from './sync'

const task = workerData as HoldTask
const ctl = new Int32Array(task.control)
const held: unknown[] = []
const first = Hamt.attach<Key, unknown>(task.map)
held.push(first)
for (let i = 1; i < task.handles; i++) {
  held.push(Hamt.attach(task.map))
}
const own = new Hamt<number, string>()
for (let i = 0; i < 500; i++) {
  own.set(i, `own ${i}`)
}
held.push(own, own.snapshot())
const it = own.entries()
it.next()
held.push(it)
first.increment('hold:workers')
signal(ctl, 0, 1)
switch (task.mode) {
  case 'return':
    break
  case 'exit':
    process.exit(0)
    break
  case 'throw':
    throw new Error('the worker throws')
  case 'wait':
    // Blocks until terminated.
    Atomics.wait(ctl, 1, 0)
    break
  case 'spin':
    for (let i = 0; ; i++) {
      first.set(`spin:${i % 100}`, i)
      first.increment('spin:count')
      Atomics.add(ctl, 2, 1)
    }
}
