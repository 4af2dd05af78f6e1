// Node benchmarks (`npm run bench`): the package's Hamt beside the alternatives a Node user
// has for sharing a map between threads, all measured in one run, in interleaved rounds.
//
//   npm run bench                  # full run (a few minutes), writes benches/results/node.{md,svg}
//   npm run bench -- --quick       # a short smoke run (CI): same code paths, fewer rounds
//
// Subjects, on 10^5 entries, with 16-character string keys and with number keys:
// - Hamt (this package): get, set, has, delete;
// - JS Map: the single-thread ceiling (not shareable);
// - the binding floor: a no-op method of the native class, called with the same key;
// - lmdb (lmdb-js): getBinaryFast, get, doesExist, and puts/removes inside transactionSync;
// - sharedmap (a SharedArrayBuffer hash map): get, set, has, delete;
// - postMessage to a worker that owns a Map: one round trip per get.
// Then aggregate get throughput with 1 and 2 workers (Hamt, lmdb, sharedmap), and full
// iteration of 10^5 entries (Hamt, Map).
import { Hamt } from 'concurrent-hamt'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as os from 'node:os'
import * as path from 'node:path'
import { isMainThread, MessageChannel, parentPort, receiveMessageOnPort, Worker, workerData, type MessagePort } from 'node:worker_threads'

const req = createRequire(__filename)

/** The parts of lmdb-js used here (its own types need a newer TypeScript setup than ours). */
interface LmdbDb {
  getBinaryFast(key: string | number): Uint8Array | undefined
  get(key: string | number): unknown
  doesExist(key: string | number): boolean
  putSync(key: string | number, value: unknown): void
  removeSync(key: string | number): boolean
  transactionSync<T>(f: () => T): T
  close(): Promise<void>
}
interface Lmdb {
  open(options: { path: string; encoding?: string; compression?: boolean; noSync?: boolean; cache?: boolean }): LmdbDb
}
/** sharedmap's API (its bundled .d.ts does not parse). */
interface SharedMapLike {
  get(key: string): string | undefined
  set(key: string, value: string | number): void
  has(key: string): boolean
  delete(key: string): void
}
type SharedMapClass = new (maxSize: number, keySize: number, objSize: number) => SharedMapLike
/** The binding's floor: a native function taking the handle and a key, doing nothing. */
type NativeFloor = (map: object, key: unknown) => void

const lmdb = req('lmdb') as Lmdb
const SharedMap = (req('sharedmap') as { SharedMap?: SharedMapClass } & SharedMapClass).SharedMap ?? (req('sharedmap') as SharedMapClass)
// The binding itself, for its floor (not part of the public API).
const noop = (req(path.join(__dirname, '..', '..', '..', 'binding.js')) as { noop: NativeFloor }).noop

const N = 100_000
const quick = process.argv.includes('--quick')
const ROUNDS = quick ? 1 : 7

function stringKeys(): string[] {
  // 16 characters: "k:" and 14 digits of a scrambled index.
  return Array.from({ length: N }, (_, i) => `k:${String((i * 2654435761) % 1e14).padStart(14, '0')}`)
}
function numberKeys(): number[] {
  return Array.from({ length: N }, (_, i) => i * 7 + 0.5)
}

function tmpdir(name: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `hamt-bench-${name}-`))
}

// ---------------------------------------------------------------------------------------------
// Workers: postMessage owner, and aggregate-get readers.

interface ReaderJob {
  kind: 'reader'
  subject: 'hamt' | 'lmdb' | 'sharedmap'
  handle?: unknown
  lmdbPath?: string
  sharedmap?: unknown
  ms: number
}
interface OwnerJob {
  kind: 'owner'
  port: MessagePort
}

if (!isMainThread) {
  const job = workerData as ReaderJob | OwnerJob
  if (job.kind === 'owner') {
    const owned = new Map<string | number, number>()
    job.port.on('message', (m: [string, string | number, number?]) => {
      const [op, key, value] = m
      if (op === 'set') {
        owned.set(key, value ?? 0)
        job.port.postMessage(true)
      } else {
        job.port.postMessage(owned.get(key))
      }
    })
  } else {
    const keys = stringKeys()
    let get: (k: string) => unknown
    if (job.subject === 'hamt') {
      const h = Hamt.attach<string, number>(job.handle as { handle: { kind: 'concurrent-hamt'; token: string } })
      get = (k) => h.get(k)
    } else if (job.subject === 'lmdb') {
      const db = lmdb.open({ path: job.lmdbPath!, compression: false, encoding: 'binary' })
      get = (k) => db.getBinaryFast(k)
    } else {
      const m = job.sharedmap as SharedMapLike
      Object.setPrototypeOf(m, SharedMap.prototype)
      get = (k) => m.get(k)
    }
    // Wait for the start signal so that all readers run at once.
    parentPort!.once('message', () => {
      let ops = 0
      let found = 0
      const end = performance.now() + job.ms
      while (performance.now() < end) {
        for (let i = 0; i < 1000; i++) {
          if (get(keys[(ops + i) % N]!) !== undefined) {
            found++
          }
        }
        ops += 1000
      }
      parentPort!.postMessage({ ops, found })
    })
    parentPort!.postMessage('ready')
  }
} else {
  void main().catch((e: unknown) => {
    console.error(e)
    process.exit(1)
  })
}

// ---------------------------------------------------------------------------------------------
// Measurement.

interface Row {
  group: string
  subject: string
  samples: number[] // ns per op
}

const rows = new Map<string, Row>()

function record(group: string, subject: string, nsPerOp: number): void {
  const id = `${group}\u0000${subject}`
  let row = rows.get(id)
  if (!row) {
    row = { group, subject, samples: [] }
    rows.set(id, row)
  }
  row.samples.push(nsPerOp)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** ns per call of `op` over every key once (after a warm-up pass). */
function timePass<K>(keys: readonly K[], op: (k: K, i: number) => unknown): number {
  for (let i = 0; i < keys.length; i++) {
    op(keys[i]!, i)
  }
  const t = process.hrtime.bigint()
  let sink = 0
  for (let i = 0; i < keys.length; i++) {
    if (op(keys[i]!, i) !== undefined) {
      sink++
    }
  }
  const ns = Number(process.hrtime.bigint() - t)
  if (sink < 0) {
    console.log(sink)
  }
  return ns / keys.length
}

async function roundTrips(port: MessagePort, keys: readonly (string | number)[], count: number): Promise<number> {
  const t = process.hrtime.bigint()
  for (let i = 0; i < count; i++) {
    port.postMessage(['get', keys[i % keys.length]!])
    await new Promise<void>((resolve) => port.once('message', () => resolve()))
  }
  return Number(process.hrtime.bigint() - t) / count
}

/** Sync round trips: post, then block on the reply with receiveMessageOnPort (the fastest way). */
function syncRoundTrips(port: MessagePort, keys: readonly (string | number)[], count: number): number {
  const t = process.hrtime.bigint()
  for (let i = 0; i < count; i++) {
    port.postMessage(['get', keys[i % keys.length]!])
    let reply = receiveMessageOnPort(port)
    while (reply === undefined) {
      reply = receiveMessageOnPort(port)
    }
  }
  return Number(process.hrtime.bigint() - t) / count
}

async function aggregate(subject: ReaderJob['subject'], threads: number, extra: Partial<ReaderJob>): Promise<number> {
  const ms = quick ? 200 : 1500
  const workers = Array.from({ length: threads }, () => new Worker(__filename, { workerData: { kind: 'reader', subject, ms, ...extra } }))
  await Promise.all(workers.map((w) => new Promise<void>((resolve) => w.once('message', () => resolve()))))
  const done = workers.map((w) => new Promise<{ ops: number; found: number }>((resolve) => w.once('message', resolve)))
  for (const w of workers) {
    w.postMessage('go')
  }
  const results = await Promise.all(done)
  await Promise.all(workers.map((w) => w.terminate()))
  for (const r of results) {
    if (r.found !== r.ops) {
      throw new Error(`${subject}: a reader missed keys (${r.found} of ${r.ops})`)
    }
  }
  return results.reduce((s, r) => s + r.ops, 0) / (ms / 1000)
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const sk = stringKeys()
  const nk = numberKeys()
  console.log(`concurrent-hamt Node benchmarks: ${N.toLocaleString('en-US')} entries, ${ROUNDS} interleaved round(s), Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'})`)

  const hamt = new Hamt<string | number, number>()
  const map = new Map<string | number, number>()
  // Hamt's hidden handle, as its methods pass it to the binding.
  const handle = (hamt as unknown as { native: object }).native
  const db = lmdb.open({ path: tmpdir('lmdb'), compression: false, noSync: true })
  const binDir = tmpdir('lmdb-bin')
  const bin = lmdb.open({ path: binDir, compression: false, encoding: 'binary', noSync: true })
  const shared = new SharedMap(N * 2 * 64, 24, 8)
  const value = Buffer.alloc(8, 7)
  for (let i = 0; i < N; i++) {
    hamt.set(sk[i]!, i)
    hamt.set(nk[i]!, i)
    map.set(sk[i]!, i)
    map.set(nk[i]!, i)
    shared.set(sk[i]!, i)
    shared.set(String(nk[i]!), i)
  }
  db.transactionSync(() => {
    for (let i = 0; i < N; i++) {
      db.putSync(sk[i]!, i)
      db.putSync(nk[i]!, i)
    }
  })
  bin.transactionSync(() => {
    for (let i = 0; i < N; i++) {
      bin.putSync(sk[i]!, value)
      bin.putSync(nk[i]!, value)
    }
  })
  const channel = new MessageChannel()
  const owner = new Worker(__filename, { workerData: { kind: 'owner', port: channel.port2 }, transferList: [channel.port2] })
  const port = channel.port1
  for (let i = 0; i < 1000; i++) {
    port.postMessage(['set', sk[i]!, i])
    await new Promise<void>((resolve) => port.once('message', () => resolve()))
  }

  const nkStr = nk.map(String)
  for (let round = 0; round < ROUNDS; round++) {
    for (const [kind, keys] of [['string', sk], ['number', nk]] as const) {
      const g = (op: string): string => `${op}, ${kind} keys`
      const ks = keys as readonly (string | number)[]
      const sharedKeys = kind === 'string' ? sk : nkStr
      record(g('get'), 'Hamt', timePass(ks, (k) => hamt.get(k)))
      record(g('get'), 'Map', timePass(ks, (k) => map.get(k)))
      record(g('get'), 'no-op native call', timePass(ks, (k) => noop(handle, k)))
      record(g('get'), 'lmdb getBinaryFast', timePass(ks, (k) => bin.getBinaryFast(k)))
      record(g('get'), 'lmdb get', timePass(ks, (k) => db.get(k)))
      record(g('get'), 'sharedmap', timePass(sharedKeys, (k) => shared.get(k)))
      record(g('has'), 'Hamt', timePass(ks, (k) => hamt.has(k)))
      record(g('has'), 'Map', timePass(ks, (k) => map.has(k)))
      record(g('has'), 'lmdb doesExist', timePass(ks, (k) => bin.doesExist(k)))
      record(g('has'), 'sharedmap', timePass(sharedKeys, (k) => shared.has(k)))
      record(g('set'), 'Hamt', timePass(ks, (k, i) => void hamt.set(k, i)))
      record(g('set'), 'Map', timePass(ks, (k, i) => void map.set(k, i)))
      record(g('set'), 'lmdb putSync in transactionSync', bin.transactionSync(() => timePass(ks, (k) => bin.putSync(k, value))))
      record(g('set'), 'sharedmap', timePass(sharedKeys, (k, i) => shared.set(k, i)))
      // delete then re-insert (a pass deletes every key; the warm-up pass re-inserts them).
      const del = <K>(name: string, keys: readonly K[], remove: (k: K) => unknown, put: (k: K, i: number) => void): void => {
        const t = process.hrtime.bigint()
        for (let i = 0; i < keys.length; i++) {
          remove(keys[i]!)
        }
        const ns = Number(process.hrtime.bigint() - t) / keys.length
        for (let i = 0; i < keys.length; i++) {
          put(keys[i]!, i)
        }
        record(g('delete'), name, ns)
      }
      del('Hamt', ks, (k) => hamt.delete(k), (k, i) => void hamt.set(k, i))
      del('Map', ks, (k) => map.delete(k), (k, i) => void map.set(k, i))
      bin.transactionSync(() => del('lmdb removeSync in transactionSync', ks, (k) => bin.removeSync(k), (k) => bin.putSync(k, value)))
      del('sharedmap', sharedKeys, (k) => shared.delete(k), (k, i) => shared.set(k, i))
      const trips = quick ? 2_000 : 20_000
      record(g('get'), 'postMessage round trip (await)', await roundTrips(port, ks, trips))
      record(g('get'), 'postMessage round trip (receiveMessageOnPort)', syncRoundTrips(port, ks, trips))
    }
    // Full iteration.
    const iter = (name: string, it: () => Iterable<unknown>): void => {
      const t = process.hrtime.bigint()
      let n = 0
      for (const _ of it()) {
        n++
      }
      record('iterate 2x10^5 entries', name, Number(process.hrtime.bigint() - t) / n)
    }
    iter('Hamt', () => hamt)
    iter('Map', () => map)
    // Aggregate throughput (Mops/s is recorded as ns per op of the aggregate).
    for (const threads of [1, 2]) {
      record(`aggregate get, ${threads} worker(s)`, 'Hamt', 1e9 / (await aggregate('hamt', threads, { handle: hamt })))
      record(`aggregate get, ${threads} worker(s)`, 'lmdb getBinaryFast', 1e9 / (await aggregate('lmdb', threads, { lmdbPath: binDir })))
      record(`aggregate get, ${threads} worker(s)`, 'sharedmap', 1e9 / (await aggregate('sharedmap', threads, { sharedmap: shared })))
    }
    process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`)
  }
  await owner.terminate()
  port.close()
  report()
}

function med(group: string, subject: string): number {
  const r = rows.get(`${group}\u0000${subject}`)
  return r ? median(r.samples) : NaN
}

/** The issue's goals, each as a ratio measured in this run. */
function goals(): { goal: string; value: number; target: number; met: boolean }[] {
  const g: { goal: string; value: number; target: number; met: boolean }[] = []
  const add = (goal: string, value: number, target: number, higherIsBetter = true): void => {
    g.push({ goal, value, target, met: higherIsBetter ? value >= target : value <= target })
  }
  add('get, number keys: Hamt / lmdb getBinaryFast (speed)', med('get, number keys', 'lmdb getBinaryFast') / med('get, number keys', 'Hamt'), 3)
  add('get, string keys: Hamt / lmdb getBinaryFast (speed)', med('get, string keys', 'lmdb getBinaryFast') / med('get, string keys', 'Hamt'), 2)
  add('get, number keys: Hamt time / no-op native call time', med('get, number keys', 'Hamt') / med('get, number keys', 'no-op native call'), 1.5, false)
  add('get, string keys: Hamt time / no-op native call time', med('get, string keys', 'Hamt') / med('get, string keys', 'no-op native call'), 1.5, false)
  add('aggregate get: 2 workers / 1 worker (Hamt)', med('aggregate get, 1 worker(s)', 'Hamt') / med('aggregate get, 2 worker(s)', 'Hamt'), 1.8)
  add('set, number keys: Hamt / lmdb putSync in transactionSync', med('set, number keys', 'lmdb putSync in transactionSync') / med('set, number keys', 'Hamt'), 3)
  add('set, string keys: Hamt / lmdb putSync in transactionSync', med('set, string keys', 'lmdb putSync in transactionSync') / med('set, string keys', 'Hamt'), 3)
  return g
}

function report(): void {
  const byGroup = new Map<string, Row[]>()
  for (const r of rows.values()) {
    const list = byGroup.get(r.group) ?? []
    list.push(r)
    byGroup.set(r.group, list)
  }
  const lines: string[] = []
  const md: string[] = [
    `Node ${process.version}, ${os.cpus().length} CPUs, ${N.toLocaleString('en-US')} entries per key kind, median of ${ROUNDS} interleaved round(s); ` +
      `aggregate rows are ns per operation of the whole (1e3 / Mops/s). Load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}.`,
    '',
    '| operation | subject | ns/op | Mops/s | spread | Hamt speed / subject speed |',
    '|---|---|---:|---:|---:|---:|',
  ]
  for (const [group, list] of byGroup) {
    const ours = list.find((r) => r.subject === 'Hamt')
    const oursMed = ours ? median(ours.samples) : NaN
    lines.push(`\n${group}`)
    for (const r of list) {
      const m = median(r.samples)
      const spread = r.samples.length > 1 ? (100 * (Math.max(...r.samples) - Math.min(...r.samples))) / 2 / m : 0
      const ratio = r === ours ? '' : `  (Hamt ${(m / oursMed).toFixed(2)}x its speed)`
      lines.push(`  ${r.subject.padEnd(48)} ${m.toFixed(1).padStart(9)} ns/op ${(1e3 / m).toFixed(2).padStart(7)} Mops/s ±${spread.toFixed(0)}%${ratio}`)
      md.push(`| ${group} | ${r.subject} | ${m.toFixed(0)} | ${(1e3 / m).toFixed(2)} | ±${spread.toFixed(0)}% | ${r === ours ? '' : `${(m / oursMed).toFixed(2)}x`} |`)
    }
  }
  lines.push('\ngoals (this run)')
  md.push('', '| goal | measured | target | met |', '|---|---:|---:|---|')
  for (const g of goals()) {
    lines.push(`  ${g.goal.padEnd(60)} ${g.value.toFixed(2).padStart(6)}x  (target ${g.target}x)  ${g.met ? 'met' : 'NOT met'}`)
    md.push(`| ${g.goal} | ${g.value.toFixed(2)}x | ${g.target}x | ${g.met ? 'yes' : 'no'} |`)
  }
  console.log(lines.join('\n'))
  if (!quick) {
    const dir = path.join(__dirname, '..', '..', '..', 'benches', 'results')
    fs.writeFileSync(path.join(dir, 'node.md'), md.join('\n') + '\n')
    fs.writeFileSync(path.join(dir, 'node.svg'), plot(byGroup))
    console.log(`\nwrote benches/results/node.md and benches/results/node.svg`)
  }
}

/** A horizontal bar chart (Mops/s, log scale) of every group, as SVG text. */
function plot(byGroup: Map<string, Row[]>): string {
  const colors: Record<string, string> = {
    Hamt: '#d62728',
    Map: '#7f7f7f',
    'no-op native call': '#bcbd22',
    'lmdb getBinaryFast': '#1f77b4',
    'lmdb get': '#aec7e8',
    'lmdb doesExist': '#1f77b4',
    'lmdb putSync in transactionSync': '#1f77b4',
    'lmdb removeSync in transactionSync': '#1f77b4',
    sharedmap: '#2ca02c',
  }
  const bar = 14
  const left = 290
  const width = 860
  const scale = (mops: number): number => (Math.log10(Math.max(mops, 0.001)) + 3) * ((width - left - 80) / 5) // 0.001 .. 100 Mops/s
  const parts: string[] = []
  let y = 30
  for (const [group, list] of byGroup) {
    parts.push(`<text x="4" y="${y + 11}" font-weight="bold">${group}</text>`)
    y += 18
    for (const r of list) {
      const mops = 1e3 / median(r.samples)
      const color = colors[r.subject] ?? '#9467bd'
      parts.push(`<text x="${left - 6}" y="${y + 11}" text-anchor="end">${r.subject}</text>`)
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, scale(mops)).toFixed(1)}" height="${bar - 2}" fill="${color}"/>`)
      parts.push(`<text x="${(left + scale(mops) + 4).toFixed(1)}" y="${y + 11}">${mops.toFixed(2)}</text>`)
      y += bar
    }
    y += 8
  }
  const ticks = [0.001, 0.01, 0.1, 1, 10, 100]
    .map((t) => `<line x1="${left + scale(t)}" y1="22" x2="${left + scale(t)}" y2="${y}" stroke="#ddd"/><text x="${left + scale(t)}" y="18" text-anchor="middle">${t}</text>`)
    .join('')
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y + 10}" font-family="sans-serif" font-size="11">` +
    `<rect width="100%" height="100%" fill="white"/>${ticks}<text x="${left}" y="8">Mops/s (log scale), higher is better</text>${parts.join('')}</svg>\n`
}
