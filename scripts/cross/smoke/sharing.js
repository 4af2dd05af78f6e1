// @ts-check
// The worker-sharing part of the smoke suite: plain CommonJS and ES2019, so that it also runs
// in old Nodes (Debian 11's Node 12) where node:test does not exist.
'use strict'
const assert = require('assert')
const path = require('path')
const { Worker } = require('worker_threads')
const { Hamt } = require('concurrent-hamt')

const WORKERS = 2
const PER_WORKER = 2000
const COUNTERS = 8

/** @param {unknown} workerData @returns {Promise<void>} */
function run(workerData) {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(__dirname, 'worker.js'), { workerData })
    w.on('error', reject)
    w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with code ${code}`))))
  })
}

/** One map shared by two workers: exact counters, and each sees the other's writes. */
async function sharedByWorkers() {
  const h = new Hamt()
  const handle = h.share()
  await Promise.all(
    Array.from({ length: WORKERS }, (_, id) => run({ handle, id, workers: WORKERS, perWorker: PER_WORKER, counters: COUNTERS })),
  )
  let total = 0
  for (let c = 0; c < COUNTERS; c++) {
    const n = h.get(`counter:${c}`)
    assert.strictEqual(typeof n, 'number')
    total += /** @type {number} */ (n)
  }
  assert.strictEqual(total, WORKERS * PER_WORKER, 'concurrent increments sum exactly')
  for (let id = 0; id < WORKERS; id++) {
    assert.strictEqual(h.get(`done:${id}`), PER_WORKER)
    assert.strictEqual(h.get(`seen-by:${id}`), true, `worker ${id} saw the other worker's writes`)
  }
  assert.strictEqual(h.get('big'), BigInt(WORKERS * PER_WORKER))
  h.close()
}

/** A Hamt passed as it is arrives as a plain object that attach accepts; stats return to zero. */
async function handOffAndRelease() {
  const before = Hamt.stats()
  /** @type {Hamt<string, number>} */
  const h = new Hamt([['x', 1]])
  await run({ handle: h, id: 0, workers: 1, perWorker: 10, counters: 1 })
  assert.strictEqual(h.get('counter:0'), 10)
  h.close()
  const after = Hamt.stats()
  assert.strictEqual(after.maps, before.maps, 'the map is freed with its last handle')
  assert.strictEqual(after.handles, before.handles, "the workers' handles were released")
  assert.throws(() => Hamt.attach(h.handle), (e) => /** @type {{code?: string}} */ (e).code === 'ERR_HAMT_STALE_TOKEN')
}

module.exports = { sharedByWorkers, handOffAndRelease }
