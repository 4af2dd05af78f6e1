// A worker that attaches, writes its level's key, and starts the next level (a worker of a
// worker), passing its Hamt itself at odd depths and a token at even ones.
import { Hamt, type Key } from 'concurrent-hamt'
import * as path from 'node:path'
import { parentPort, Worker, workerData } from 'node:worker_threads'
import type { NestedResult, NestedTask } from './protocol'

async function main(task: NestedTask): Promise<void> {
  const receivedKind = 'token' in task.map ? 'token' : 'hamt'
  const h = Hamt.attach<Key, unknown>(task.map)
  const sawParents: boolean[] = []
  for (let d = 0; d < task.depth; d++) {
    sawParents.push(h.get(`depth${d}`) === d)
  }
  h.set(`depth${task.depth}`, task.depth)
  let child: NestedResult | null = null
  let sawChild: boolean | null = null
  if (task.depth < task.maxDepth) {
    const next: NestedTask = { map: task.depth % 2 === 1 ? unwrap(h) : h.share(), depth: task.depth + 1, maxDepth: task.maxDepth }
    const w = new Worker(path.join(__dirname, 'nested.js'), { workerData: next })
    child = await new Promise<NestedResult>((resolve, reject) => {
      let result: NestedResult | undefined
      w.on('message', (m: NestedResult) => {
        result = m
      })
      w.on('error', reject)
      w.on('exit', (code) => (result !== undefined && code === 0 ? resolve(result) : reject(new Error(`level ${task.depth + 1} exited with ${code}`))))
    })
    sawChild = h.get(`depth${task.depth + 1}`) === task.depth + 1
  }
  parentPort?.postMessage({ depth: task.depth, sawParents, sawChild, child, receivedKind } satisfies NestedResult)
  h.close()
}

/** The Hamt itself, for workerData (structured clone makes it `{ handle }`). */
function unwrap(h: Hamt<Key, unknown>): NestedTask['map'] {
  return h as unknown as NestedTask['map']
}

void main(workerData as NestedTask)
