// The worker of exit-records.test.ts: writes the shared map (so that its retired list there
// holds nodes), opens many handles, snapshots and iterators (each open iterator holds a hazard
// record), then ends while holding hazard records, as `mode` says: inside nested update()
// functions (a record or more per level, past the eight of its own block), inside an
// iteration, or inside a getter that v8.serialize runs; by returning, process.exit(),
// throwing, or blocking until terminated.
import { Hamt, type Key } from 'concurrent-hamt'
import { workerData } from 'node:worker_threads'
import type { ExitTask } from './exit-modes'

const task = workerData as ExitTask
const ctl = new Int32Array(task.control)
const shared = Hamt.attach<Key, unknown>(task.map)
const held: unknown[] = []

for (let i = 0; i < task.writes; i++) {
  shared.swap(`x${task.id}:${i % 16}`, { i, by: task.id })
}
for (let i = 0; i < 20; i++) {
  held.push(Hamt.attach(task.map))
}
// A snapshot and iterators of the shared map, or of a map of this worker's own: closing the
// former at the tear-down reclaims the shared map's retired lists (this thread's included);
// with the latter, this thread's retired nodes are left for the remaining threads to free.
const source = task.ownIterators ? new Hamt<Key, unknown>([['a', 1], ['b', 2], ['c', 3], ['d', 4]]) : shared
const snap = source.snapshot()
held.push(source, snap)
for (let i = 0; i < task.iterators; i++) {
  const it = (i % 2 === 0 ? source : snap).entries()
  it.next()
  held.push(it)
}

/** The holding point: report, then end as the mode says. */
function end(where: 'update' | 'iteration' | 'getter' | 'top'): void {
  Atomics.store(ctl, 1, Hamt.stats().hazardRecordsInUse)
  Atomics.store(ctl, 0, 1)
  Atomics.notify(ctl, 0)
  const mode = task.mode
  if (mode.startsWith('exit')) {
    process.exit(0)
  }
  if (mode.startsWith('throw')) {
    throw new Error(`thrown inside ${where}`)
  }
  if (mode.startsWith('terminate')) {
    Atomics.wait(ctl, 2, 0) // until terminated
  }
}

/** update() nested `depth` levels, over the shared map and maps of this worker. */
function nested(level: number): void {
  const m: Hamt<Key, unknown> = level === 0 ? shared : new Hamt<Key, unknown>([[`k${level}`, level]])
  held.push(m)
  m.update(`k${level}`, (cur) => {
    if (level + 1 < task.depth) {
      nested(level + 1)
    } else {
      end('update')
    }
    return cur
  })
}

switch (task.mode) {
  case 'return-holding-iterators':
    end('top')
    break
  case 'exit-in-update':
  case 'throw-in-update':
  case 'terminate-in-update':
    nested(0)
    break
  case 'exit-in-iteration':
  case 'throw-in-iteration':
  case 'terminate-in-iteration': {
    let n = 0
    for (const _ of source.keys()) {
      if (++n === 3) {
        end('iteration')
      }
    }
    end('iteration') // fewer than 3 keys
    break
  }
  case 'exit-in-getter':
    shared.set('getter', {
      get x(): number {
        end('getter')
        return 1
      },
    })
    break
}
