// @ts-check
'use strict'
const { workerData } = require('worker_threads')
const { Hamt } = require('concurrent-hamt')

const { handle, id, workers, perWorker, counters } = workerData
const h = Hamt.attach(handle)
for (let i = 0; i < perWorker; i++) {
  h.increment(`counter:${i % counters}`)
  h.increment('big', 1n)
}
h.set(`done:${id}`, perWorker)
// Wait (bounded) until every other worker has finished, reading its writes through the map.
const deadline = Date.now() + 60000
let others = 0
while (Date.now() < deadline) {
  others = 0
  for (let j = 0; j < workers; j++) {
    if (j !== id && h.get(`done:${j}`) === perWorker) {
      others++
    }
  }
  if (others === workers - 1) {
    break
  }
}
h.set(`seen-by:${id}`, others === workers - 1)
h.close()
