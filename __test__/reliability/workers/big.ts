// The worker of extreme.test.ts: reads the big keys and values the test stored, posts their
// SHA-256 digests (and sizes), and writes each value back under a key of its own, so that the
// test checks the round trip through another thread in both directions.
import { Hamt, type Key } from 'concurrent-hamt'
import { parentPort, workerData } from 'node:worker_threads'
import { digest, type BigSeen, type BigTask } from './digest'

function main(task: BigTask): void {
  const h = Hamt.attach<Key, unknown>(task.map)
  const digests: (string | null)[] = []
  const lengths: number[] = []
  task.keys.forEach((k, i) => {
    const v = h.get(k)
    digests.push(digest(v))
    lengths.push(typeof v === 'string' || v instanceof Uint8Array ? v.length : -1)
    h.set(`back:${i}`, v)
  })
  const iteratedKeyDigests: string[] = []
  for (const k of h.keys()) {
    if ((typeof k === 'string' && k.length >= 1 << 19) || (k instanceof Uint8Array && k.length >= 1 << 20)) {
      iteratedKeyDigests.push(digest(k) ?? '')
    }
  }
  parentPort?.postMessage({ digests, lengths, iteratedKeyDigests } satisfies BigSeen)
  h.close()
}

main(workerData as BigTask)
