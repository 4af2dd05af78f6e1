// The install path in ESM: import the installed package, share a map with two workers.
import assert from 'node:assert'
import { Worker } from 'node:worker_threads'
import { Hamt } from 'concurrent-hamt'

const h = new Hamt()
await Promise.all(
  [0, 1].map(
    (id) =>
      new Promise((resolve, reject) => {
        const w = new Worker(new URL('./esm-worker.mjs', import.meta.url), { workerData: { handle: h.share(), id } })
        w.on('error', reject)
        w.on('exit', resolve)
      }),
  ),
)
assert.strictEqual(h.get('count'), 2000)
assert.deepStrictEqual(h.getMany(['from:0', 'from:1']), [0, 1])
console.log(`esm: two workers shared one map (count ${h.get('count')}) on ${process.arch}`)
h.close()
