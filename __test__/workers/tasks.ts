// The worker of the concurrency tests: one task per run (see protocol.ts), one result message.
import { Hamt, type Key } from 'concurrent-hamt'
import { parentPort, workerData } from 'node:worker_threads'
import type { Task, TaskResult } from './protocol'
import { barrier, signal, waitFor } from './sync'

function post(result: TaskResult): void {
  parentPort?.postMessage(result)
}

function main(task: Task): void {
  const h = Hamt.attach<Key, unknown>(task.map)
  try {
    switch (task.kind) {
      case 'disjoint': {
        for (let i = 0; i < task.perWorker; i++) {
          h.set(`w${task.id}:${i}`, i % 2 === 0 ? { id: task.id, i } : `${task.id}/${i}`)
        }
        barrier(new Int32Array(task.sync), 0, task.workers)
        let seen = 0
        const wrong: string[] = []
        for (let w = 0; w < task.workers; w++) {
          for (let i = 0; i < task.perWorker; i++) {
            const v = h.get(`w${w}:${i}`)
            const ok =
              i % 2 === 0
                ? typeof v === 'object' && v !== null && (v as { id?: unknown }).id === w && (v as { i?: unknown }).i === i
                : v === `${w}/${i}`
            if (ok) {
              seen++
            } else if (wrong.length < 10) {
              wrong.push(`w${w}:${i}`)
            }
          }
        }
        post({ kind: 'disjoint', seen, wrong })
        break
      }
      case 'claim': {
        const cells = new Int32Array(task.sync)
        barrier(cells, 0, task.workers)
        const won: number[] = []
        for (let i = 0; i < task.keys; i++) {
          // Half the workers go up, half go down, to collide in the middle too.
          const k = task.id % 2 === 0 ? i : task.keys - 1 - i
          if (h.setIfAbsent(`claim:${k}`, task.id)) {
            won.push(k)
          }
        }
        barrier(cells, 1, task.workers)
        const view = h.getMany(Array.from({ length: task.keys }, (_, i) => `claim:${i}`)) as number[]
        post({ kind: 'claim', won, view })
        break
      }
      case 'swap': {
        barrier(new Int32Array(task.sync), 0, task.workers)
        const returned: (string | undefined)[] = []
        for (let j = 0; j < task.rounds; j++) {
          returned.push(h.swap(`s:${j % task.keys}`, `${task.id}:${j}`) as string | undefined)
        }
        post({ kind: 'swap', returned })
        break
      }
      case 'increment': {
        barrier(new Int32Array(task.sync), 0, task.workers)
        const numbers: number[][] = Array.from({ length: task.counters }, () => [])
        const bigs: bigint[] = []
        for (let j = 0; j < task.n; j++) {
          const c = j % task.counters
          numbers[c]?.push(h.increment(`ctr:${c}`))
          if (j % 4 === 0) {
            bigs.push(h.increment('big', 2n ** 64n + 1n))
          }
        }
        post({ kind: 'increment', numbers, bigs })
        break
      }
      case 'update': {
        barrier(new Int32Array(task.sync), 0, task.workers)
        const counts: number[] = []
        const records: number[] = []
        let runs = 0
        for (let j = 0; j < task.n; j++) {
          counts.push(
            h.update('u:count', (v) => {
              runs++
              return ((v as number | undefined) ?? 0) + 1
            }) as number,
          )
          const r = h.update('u:record', (v) => {
            runs++
            const cur = v as { n: number; by: number[] } | undefined
            return { n: (cur?.n ?? 0) + 1, by: [...(cur?.by ?? []).slice(-3), task.id] }
          }) as { n: number }
          records.push(r.n)
        }
        post({ kind: 'update', counts, records, runs })
        break
      }
      case 'cas-counter': {
        barrier(new Int32Array(task.sync), 0, task.workers)
        let retries = 0
        for (let j = 0; j < task.n; j++) {
          for (;;) {
            const cur = h.get('cas') as number | undefined
            if (h.compareAndSet('cas', cur, (cur ?? 0) + 1)) {
              break
            }
            retries++
          }
        }
        post({ kind: 'cas', retries })
        break
      }
      case 'chain': {
        const ctl = new Int32Array(task.control)
        const L = task.length
        const ckey = (i: number): string => `c${task.id}:${i}`
        const pkey = (i: number): string => `p${task.id}:${i}`
        let r = 0
        while (Atomics.load(ctl, 0) === 0) {
          r++
          // The value chain: every key from r - 1 to r, in order, with a different operation each round.
          switch (r % 5) {
            case 0:
              for (let i = 0; i < L; i++) h.set(ckey(i), r)
              break
            case 1:
              h.setMany(Array.from({ length: L }, (_, i): [string, number] => [ckey(i), r]))
              break
            case 2:
              for (let i = 0; i < L; i++) h.swap(ckey(i), r)
              break
            case 3:
              for (let i = 0; i < L; i++) h.increment(ckey(i))
              break
            case 4:
              for (let i = 0; i < L; i++) h.update(ckey(i), () => r)
              break
          }
          // The presence chain: added in order in odd rounds, deleted in order in even ones.
          for (let i = 0; i < L; i++) {
            if (r % 2 === 1) {
              h.set(pkey(i), r)
            } else {
              h.delete(pkey(i))
            }
          }
          signal(ctl, 1 + task.id, r)
        }
        post({ kind: 'chain', rounds: r })
        break
      }
      case 'contend-updater': {
        const ctl = new Int32Array(task.control)
        const args: unknown[] = []
        const result = h.update(task.key, (cur) => {
          args.push(cur)
          if (args.length === 1) {
            signal(ctl, 0, 1) // the writer may go
            waitFor(ctl, 0, 2) // until it has written
          }
          return (cur as number) + 100
        })
        post({ kind: 'contend', args, result })
        break
      }
      case 'contend-writer': {
        const ctl = new Int32Array(task.control)
        waitFor(ctl, 0, 1)
        h.set(task.key, 7)
        signal(ctl, 0, 2)
        post({ kind: 'contend', args: [], result: null })
        break
      }
      case 'stuck-in-update': {
        const ctl = new Int32Array(task.control)
        h.update(task.key, () => {
          signal(ctl, 0, 1)
          Atomics.wait(ctl, 1, 0) // until terminated
          return 'never stored'
        })
        break
      }
      case 'stuck-in-serialize': {
        const ctl = new Int32Array(task.control)
        h.set(task.key, {
          get x(): string {
            signal(ctl, 0, 1)
            Atomics.wait(ctl, 1, 0) // until terminated
            return 'never stored'
          },
        })
        break
      }
      case 'echo': {
        h.set('echo', 'from the worker')
        h.set('echo:buffer', Buffer.from('buf'))
        h.set('echo:u8', new Uint8Array([1, 2]))
        h.set('echo:date', new Date(1234))
        h.set('echo:map', new Map([[1n, new Set(['s'])]]))
        h.set(new Uint8Array([0xec, 0x40]), 2n ** 65n)
        const mine = Hamt.attach<Key, unknown>(task.map)
        post({ kind: 'echo', received: task.map, sizeSeen: h.size, back: mine })
        // `mine` stays open until the worker exits: the test attaches what it received
        // while its own handle keeps the map alive anyway.
        break
      }
    }
  } finally {
    h.close()
  }
}

main(workerData as Task)
