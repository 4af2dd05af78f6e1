// Check 5: extreme sizes.
//
// - 64 MiB values (a Uint8Array, a Latin-1 string of 64 Mi characters, a two-byte string of
//   32 Mi UTF-16 units with lone surrogates, an object holding 64 MiB through structured
//   clone) round-trip through set, get, swap, compareAndSet, iteration and a worker (which
//   reads them, and writes them back for the main thread to read).
// - 1 MiB keys (a Latin-1 string, a two-byte string, a Uint8Array and a Buffer of the same
//   bytes, which are the same key) are found by equal copies, not by near misses, come back
//   from iteration, and are found from a worker.
// - 10^6 entries inserted then cleared, twice: `unfreedNodes` is back within the one-thread
//   bound right after each clear (clear() reclaims eagerly), `reportedMemory` is back at the
//   baseline once the handle has written one sync interval (handle.rs `SYNC_EVERY`: the
//   estimate is brought up to date every 1024 writes) and exactly at the baseline once it is
//   closed, and resident memory after the second round is within 16 MiB of after the first:
//   glibc may keep freed memory for reuse rather than give it back, so the first round's
//   peak can stay resident, but an identical second round reuses it and must not grow it.
//
// Sizes: 2·10^5 entries (quick), 10^6 (HAMT_RELIABILITY=full); the 64 MiB values and 1 MiB
// keys are the same in both.
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { randomFillSync } from 'node:crypto'
import { stats } from '../_helpers'
import { MiB, mib, report, rss, settle, size, start, statsLine, unfreedBound, waitFor } from './_reliability'
import { digest, type BigSeen, type BigTask } from './workers/digest'

const ENTRIES = size(200_000, 1_000_000)
/** handle.rs SYNC_EVERY: writes between two updates of the memory a handle reports to V8. */
const SYNC_EVERY = 1024
const RSS_MARGIN = 16 * MiB

async function worker(task: BigTask): Promise<BigSeen> {
  const w = start('big', task)
  const posted = await waitFor(() => w.messages.length > 0, () => !w.done())
  const code = await w.exited
  if (!posted || code !== 0) {
    throw new Error(`the worker exited with ${code}: ${String(w.errors[0])}`)
  }
  return w.messages[0] as BigSeen
}

function bytesEqual(a: unknown, b: Uint8Array): boolean {
  return a instanceof Uint8Array && Buffer.compare(a, b) === 0
}

test.serial('64 MiB values round-trip through set, get, swap, compareAndSet, iteration and a worker', async (t) => {
  const began = Date.now()
  const bytes = new Uint8Array(64 * MiB)
  randomFillSync(bytes)
  const latin1 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
  const twoByte = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf16le')
  t.is(latin1.length, 64 * MiB)
  t.is(twoByte.length, 32 * MiB)
  const values: [string, unknown][] = [
    ['bytes', bytes],
    ['latin1', latin1],
    ['utf16', twoByte],
    ['object', { blob: bytes, n: 1 }],
  ]
  const want = values.map(([, v]) => digest(v))
  const h = new Hamt<Key, unknown>()
  for (const [k, v] of values) {
    h.set(k, v)
  }
  for (const [i, [k, v]] of values.entries()) {
    const got = h.get(k)
    t.is(digest(got), want[i], `get ${k}`)
    if (v instanceof Uint8Array) {
      t.true(bytesEqual(got, v))
      t.is(Object.getPrototypeOf(got), Uint8Array.prototype, 'a Uint8Array comes back as a Uint8Array')
    } else if (typeof v === 'string') {
      t.true(got === v, `${k}: the string comes back equal`)
    }
  }
  t.is(h.size, values.length)
  // Iteration gives every value back.
  let iterated = 0
  for (const [k, v] of h) {
    const i = values.findIndex(([name]) => name === k)
    t.is(digest(v), want[i], `iterated ${String(k)}`)
    iterated++
  }
  t.is(iterated, values.length)
  // swap returns the 64 MiB value it replaced; compareAndSet compares 64 MiB.
  t.true(bytesEqual(h.swap('bytes', 'small'), bytes))
  t.true(h.compareAndSet('bytes', 'small', bytes))
  t.true(h.compareAndSet('utf16', twoByte, latin1))
  t.false(h.compareAndSet('utf16', twoByte, 'never'))
  t.true(h.compareAndSet('utf16', latin1, twoByte))
  // Through a worker, both ways.
  const seen = await worker({ map: h.share(), keys: values.map(([k]) => k) })
  t.deepEqual(seen.digests, want)
  t.deepEqual(seen.lengths, [64 * MiB, 64 * MiB, 32 * MiB, -1])
  for (const [i] of values.entries()) {
    t.is(digest(h.get(`back:${i}`)), want[i], `written back by the worker: ${values[i]?.[0]}`)
  }
  h.clear()
  t.is(h.size, 0)
  h.close()
  report(t, 'big-values', { valueBytes: 64 * MiB, values: values.map(([k]) => k), seconds: (Date.now() - began) / 1000 })
})

test.serial('1 MiB keys (Latin-1 and two-byte strings, Uint8Array, Buffer) are found by equal copies only, iterate back, and are found from a worker', async (t) => {
  const began = Date.now()
  const raw = new Uint8Array(MiB)
  randomFillSync(raw)
  const latin1 = Buffer.from(raw).toString('latin1')
  const twoByte = Buffer.from(raw).toString('utf16le')
  const keys: [string, Key][] = [
    ['latin1', latin1],
    ['utf16', twoByte],
    ['bytes', raw],
  ]
  const h = new Hamt<Key, unknown>()
  keys.forEach(([, k], i) => h.set(k, i))
  t.is(h.size, 3)
  keys.forEach(([name, k], i) => {
    t.is(h.get(k), i, `get by the same ${name}`)
    // An equal copy made separately is the same key; one that differs in its last unit is not.
    if (typeof k === 'string') {
      const copy = `${k.slice(0, k.length - 1)}${k[k.length - 1] ?? ''}`
      t.is(h.get(copy), i, `${name}: an equal copy`)
      const near = `${k.slice(0, k.length - 1)}${String.fromCharCode((k.charCodeAt(k.length - 1) + 1) & 0xff)}`
      t.false(h.has(near), `${name}: a key differing in its last unit`)
      t.false(h.has(k.slice(0, k.length - 1)), `${name}: a prefix`)
    } else if (k instanceof Uint8Array) {
      t.is(h.get(new Uint8Array(k)), i, 'bytes: an equal copy')
      t.is(h.get(Buffer.from(k)), i, 'bytes: a Buffer of the same bytes is the same key')
      const near = new Uint8Array(k)
      near[near.length - 1] ^= 1
      t.false(h.has(near), 'bytes: a key differing in its last byte')
    }
  })
  // Iteration gives the keys back.
  const back = [...h.keys()]
  t.is(back.length, 3)
  for (const [name, k] of keys) {
    const found = back.some((b) => (typeof k === 'string' ? b === k : bytesEqual(b, k as Uint8Array)))
    t.true(found, `iteration gives ${name} back`)
  }
  // A worker finds them (they reach it by structured clone of workerData).
  const seen = await worker({ map: h.share(), keys: keys.map(([, k]) => k) })
  t.deepEqual(seen.iteratedKeyDigests.slice().sort(), keys.map(([, k]) => digest(k) ?? '').sort())
  keys.forEach((_, i) => t.is(h.get(`back:${i}`), i, `the worker read key ${i}`))
  for (const [, k] of keys) {
    t.true(h.delete(k))
  }
  t.is(h.size, 3, 'the three back: keys are left')
  h.close()
  report(t, 'big-keys', { keyBytes: MiB, keys: keys.map(([n]) => n), seconds: (Date.now() - began) / 1000 })
})

test.serial(`${ENTRIES} entries inserted then cleared, twice: unfreed nodes, reported memory and RSS come back`, async (t) => {
  const began = Date.now()
  await settle()
  const base = stats()
  const rounds: { peakRss: number; rssAfter: number; unfreedAfterClear: number; reportedPeak: number; reportedAfterClear: number; reportedAfterSync: number }[] = []
  for (let round = 0; round < 2; round++) {
    const h = new Hamt<Key, unknown>()
    for (let i = 0; i < ENTRIES; i++) {
      h.set(i % 3 === 0 ? `key ${i}` : i, i % 2 === 0 ? `value ${i}` : i)
    }
    t.is(h.size, ENTRIES)
    const peakRss = rss()
    const reportedPeak = stats().reportedMemory - base.reportedMemory
    t.true(reportedPeak >= ENTRIES * 64, `round ${round}: the handle reports ${mib(reportedPeak)} for ${ENTRIES} entries`)
    h.clear()
    t.is(h.size, 0)
    const afterClear = stats()
    const bound = unfreedBound({ live: 1, exited: 0, dropping: 0, keys: 0, records: afterClear.hazardRecords })
    t.true(afterClear.unfreedNodes <= bound, `round ${round}: ${afterClear.unfreedNodes} unfreed after clear(), bound ${bound}`)
    const reportedAfterClear = afterClear.reportedMemory - base.reportedMemory
    for (let i = 0; i < SYNC_EVERY; i++) {
      h.set('after', i)
    }
    const reportedAfterSync = stats().reportedMemory - base.reportedMemory
    t.true(reportedAfterSync <= reportedPeak / 100 + (64 << 10), `round ${round}: ${mib(reportedAfterSync)} reported after clear() and ${SYNC_EVERY} writes (peak ${mib(reportedPeak)})`)
    h.close()
    await settle(6)
    t.is(stats().reportedMemory, base.reportedMemory, `round ${round}: every report given back`)
    t.is(stats().maps, base.maps, statsLine())
    rounds.push({ peakRss, rssAfter: rss(), unfreedAfterClear: afterClear.unfreedNodes, reportedPeak, reportedAfterClear, reportedAfterSync })
  }
  const [first, second] = rounds as [(typeof rounds)[0], (typeof rounds)[0]]
  const growth = second.rssAfter - first.rssAfter
  t.true(growth <= RSS_MARGIN, `RSS after round 2 ${mib(second.rssAfter)}, after round 1 ${mib(first.rssAfter)}: grew ${mib(growth)}`)
  report(t, 'million-entries', {
    entries: ENTRIES,
    rounds: rounds.map((r) => ({
      peakRss: mib(r.peakRss),
      rssAfter: mib(r.rssAfter),
      unfreedAfterClear: r.unfreedAfterClear,
      reportedPeak: mib(r.reportedPeak),
      reportedRightAfterClear: mib(r.reportedAfterClear),
      reportedAfterSync: mib(r.reportedAfterSync),
    })),
    rssGrowthSecondRound: mib(growth),
    seconds: (Date.now() - began) / 1000,
  })
})
