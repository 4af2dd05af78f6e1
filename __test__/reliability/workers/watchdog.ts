// The watchdog of hostile.test.ts: the test counts its calls in slot 0 of a SharedArrayBuffer
// and writes a description of the call in progress after it (slot 1: its length in bytes). If
// the count stops moving for `limitMs` while slot 2 is 0 (not finished), a call hangs: print
// the call and abort the process, so that the hang is reported with its cause rather than as
// an anonymous timeout.
import { writeSync } from 'node:fs'
import { workerData } from 'node:worker_threads'

export interface WatchdogTask {
  readonly control: SharedArrayBuffer
  readonly limitMs: number
}

const task = workerData as WatchdogTask
const cells = new Int32Array(task.control, 0, 3)
const text = new Uint8Array(task.control, 12)
let last = Atomics.load(cells, 0)
let still = 0
while (Atomics.load(cells, 2) === 0) {
  Atomics.wait(cells, 0, last, 1000)
  const now = Atomics.load(cells, 0)
  if (now !== last) {
    last = now
    still = 0
    continue
  }
  still += 1000
  if (still >= task.limitMs && Atomics.load(cells, 2) === 0) {
    const n = Math.min(Atomics.load(cells, 1), text.length)
    const call = Buffer.from(text.slice(0, n)).toString('utf8')
    writeSync(2, `\nhostile.test: call ${last} has not returned for ${task.limitMs} ms, a hang: ${call}\n`)
    process.kill(process.pid, 'SIGABRT')
  }
}
