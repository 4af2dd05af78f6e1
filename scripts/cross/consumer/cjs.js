// @ts-check
// The install path in CommonJS: require the installed package, share a map with two workers.
'use strict'
const assert = require('assert')
const path = require('path')
const { Worker } = require('worker_threads')
const { Hamt } = require('concurrent-hamt')

const h = new Hamt()
let done = 0
for (let id = 0; id < 2; id++) {
  const w = new Worker(path.join(__dirname, 'cjs-worker.js'), { workerData: { handle: h.share(), id } })
  w.on('error', (e) => {
    console.error(e)
    process.exit(1)
  })
  w.on('exit', () => {
    if (++done === 2) {
      assert.strictEqual(h.get('count'), 2000)
      assert.strictEqual(h.get('from:0'), 0)
      assert.strictEqual(h.get('from:1'), 1)
      console.log(`cjs: two workers shared one map (count ${h.get('count')}) on ${process.arch}`)
      h.close()
    }
  })
}
