// The demonstration (`npm run demo [workers] [words]`): worker threads count the words of a
// generated corpus into one shared map with `increment`, while the main thread takes O(1)
// snapshots and prints their exact size; then the result is checked against a single-thread
// `Map`, and the same work is timed through `postMessage` to one owner thread.
import { Hamt, type HamtHandle } from 'concurrent-hamt'
import * as os from 'node:os'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'

/** A small deterministic generator (xorshift32), so every thread can rebuild any chunk. */
function* words(seed: number, count: number, vocabulary: number): Generator<string> {
  let x = seed | 1
  for (let i = 0; i < count; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    // Skewed towards small ranks, as word frequencies are: rank = v * u^3.
    const u = (x >>> 0) / 2 ** 32
    const rank = Math.floor(vocabulary * u * u * u)
    yield `w${rank.toString(36)}`
  }
}

interface Job {
  mode: 'shared' | 'message'
  handle?: HamtHandle
  seed: number
  count: number
  vocabulary: number
}

if (!isMainThread) {
  const job = workerData as Job
  const port = parentPort!
  if (job.mode === 'shared') {
    using counts = Hamt.attach<string, number>(job.handle!)
    for (const w of words(job.seed, job.count, job.vocabulary)) {
      counts.increment(w)
    }
    port.postMessage('done')
  } else {
    // One message per increment, to the thread that owns the Map.
    for (const w of words(job.seed, job.count, job.vocabulary)) {
      port.postMessage(w)
    }
    port.postMessage(null)
  }
} else {
  void main()
}

function fmt(n: number): string {
  return n.toLocaleString('en-US')
}

function run(job: Job, onMessage?: (m: unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const w = new Worker(__filename, { workerData: job })
    w.on('message', (m: unknown) => {
      if (m === 'done' || m === null) {
        resolve()
      } else if (onMessage) {
        onMessage(m)
      }
    })
    w.on('error', reject)
    w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker exited with ${code}`))))
  })
}

async function main(): Promise<void> {
  const threads = Number(process.argv[2] ?? os.availableParallelism())
  const total = Number(process.argv[3] ?? 1_000_000)
  const vocabulary = 20_000
  if (!(threads >= 1 && Number.isInteger(threads)) || !(total >= threads && Number.isInteger(total))) {
    console.error('usage: npm run demo [workers >= 1] [words >= workers]')
    process.exit(2)
  }
  const chunk = (i: number): { seed: number; count: number } => {
    const start = Math.floor((total * i) / threads)
    return { seed: 0x9e3779b9 * (i + 1), count: Math.floor((total * (i + 1)) / threads) - start }
  }
  console.log(
    `concurrent-hamt demo: ${threads} worker thread(s) count ${fmt(total)} words ` +
      `(vocabulary ${fmt(vocabulary)}) into one shared map`,
  )

  // 1. The shared map, with snapshots from the main thread while the workers write.
  using counts = new Hamt<string, number>()
  const snapshots: string[] = []
  let previous = 0
  const t0 = performance.now()
  const observer = setInterval(() => {
    using snap = counts.snapshot()
    let counted = 0
    for (const n of snap.values()) {
      counted += n
    }
    if (counted < previous) {
      throw new Error(`a later snapshot counted fewer words (${counted} < ${previous})`)
    }
    previous = counted
    snapshots.push(
      `  snapshot at ${(performance.now() - t0).toFixed(0).padStart(5)} ms: ` +
        `${fmt(snap.size).padStart(6)} distinct words, ${fmt(counted).padStart(9)} counted`,
    )
  }, 100)
  await Promise.all(Array.from({ length: threads }, (_, i) => run({ mode: 'shared', handle: counts.share(), vocabulary, ...chunk(i) })))
  const shared = (performance.now() - t0) / 1000
  clearInterval(observer)
  console.log(snapshots.join('\n'))

  // 2. The same work through postMessage to one owner thread (this one) holding a Map.
  const owned = new Map<string, number>()
  const t1 = performance.now()
  await Promise.all(
    Array.from({ length: threads }, (_, i) =>
      run({ mode: 'message', vocabulary, ...chunk(i) }, (m) => {
        const w = m as string
        owned.set(w, (owned.get(w) ?? 0) + 1)
      }),
    ),
  )
  const messaged = (performance.now() - t1) / 1000

  // 3. Check against a single-thread Map.
  const expected = new Map<string, number>()
  for (let i = 0; i < threads; i++) {
    const { seed, count } = chunk(i)
    for (const w of words(seed, count, vocabulary)) {
      expected.set(w, (expected.get(w) ?? 0) + 1)
    }
  }
  const final = counts.snapshot()
  let mismatches = 0
  for (const [w, n] of final) {
    if (expected.get(w) !== n) {
      mismatches++
    }
  }
  const distinct = final.size
  const ok = mismatches === 0 && distinct === expected.size && counts.size === expected.size && owned.size === expected.size
  final.close()

  const rate = (s: number): string => `${(total / s / 1e6).toFixed(2)} M increments/s`
  console.log(`shared Hamt (${threads} workers, increment):           ${shared.toFixed(2)} s, ${rate(shared)}`)
  console.log(`postMessage to one owner thread (1 message each): ${messaged.toFixed(2)} s, ${rate(messaged)}`)
  console.log(`  shared map / postMessage throughput: ${(messaged / shared).toFixed(2)}x`)
  console.log(
    `check: ${fmt(distinct)} distinct words, ${fmt(total)} counted; ` +
      `every count equals a single-thread Map's: ${ok ? 'OK' : `FAILED (${mismatches} differ)`}`,
  )
  if (!ok) {
    process.exitCode = 1
  }
}
