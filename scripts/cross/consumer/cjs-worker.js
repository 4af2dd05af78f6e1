// @ts-check
'use strict'
const { workerData } = require('worker_threads')
const { Hamt } = require('concurrent-hamt')
const h = Hamt.attach(workerData.handle)
for (let i = 0; i < 1000; i++) h.increment('count')
h.set(`from:${workerData.id}`, workerData.id)
h.close()
