// Iteration: keys/values/entries/forEach/for-of over a snapshot taken at the call, in batches,
// and the release of the snapshot when an iterator finishes or is abandoned.
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { canon, collectUntil, gc, same, show, snapshotSize, stats, throwsHamt, turn, unchecked } from './_helpers'

function filled(n: number): Hamt<number, string> {
  const h = new Hamt<number, string>()
  for (let i = 0; i < n; i++) {
    h.set(i, `v${i}`)
  }
  return h
}

test('keys, values, entries, forEach and for-of agree with each other, in one order', (t) => {
  const h = new Hamt<Key, unknown>()
  const sample: [Key, unknown][] = [
    ['a', 1], [1, 'one'], [1n, { big: true }], [true, null], [new Uint8Array([1, 2]), Buffer.from('b')],
    [-0, undefined], [NaN, [1, 2]], ['\ud800', new Date(0)], [2n ** 64n, 2n ** 65n], ['', ''],
  ]
  for (let i = 0; i < 1000; i++) {
    sample.push([`k${i}`, i])
  }
  h.setMany(sample)
  const entries = [...h.entries()]
  const keys = [...h.keys()]
  const values = [...h.values()]
  const forOf: [Key, unknown][] = []
  for (const e of h) {
    forOf.push(e)
  }
  const viaForEach: [Key, unknown][] = []
  const self = {}
  h.forEach(function (this: unknown, v, k, m) {
    t.is(this, self)
    t.is(m, h)
    viaForEach.push([k, v])
  }, self)
  t.is(entries.length, sample.length)
  t.true(same(keys, entries.map((e) => e[0])), 'keys() in the order of entries()')
  t.true(same(values, entries.map((e) => e[1])), 'values() in the order of entries()')
  t.true(same(forOf, entries), 'for-of is entries()')
  t.true(same(viaForEach, entries), 'forEach is entries()')
  t.true(same([...h[Symbol.iterator]()], entries))
  // The entries are the map's.
  const byKey = new Map(entries.map(([k, v]) => [canon(k), v]))
  t.is(byKey.size, sample.length, 'each key once')
  for (const [k, v] of sample) {
    t.true(byKey.has(canon(k)), `key ${show(k)}`)
    t.true(same(byKey.get(canon(k)), v), `value of ${show(k)}`)
  }
  h.close()
})

test('iterators are iterable iterators, and every entry is a fresh array', (t) => {
  const h = filled(3)
  const it = h.entries()
  t.is(it[Symbol.iterator](), it)
  const first = it.next()
  t.false(first.done)
  t.true(Array.isArray(first.value))
  const rest = [...it]
  t.is(rest.length, 2)
  t.deepEqual(it.next(), { done: true, value: undefined })
  const k = h.keys()
  t.is(k[Symbol.iterator](), k)
  h.close()
})

test('more than 10,000 entries (many batches): each once, nothing else', (t) => {
  const n = 25_001
  const h = filled(n)
  let count = 0
  const seen = new Uint8Array(n)
  for (const [k, v] of h) {
    t.true(Number.isInteger(k) && k >= 0 && k < n)
    if (seen[k] !== 0 || v !== `v${k}`) {
      t.fail(`entry ${k} seen twice or with ${v}`)
    }
    seen[k] = 1
    count++
  }
  t.is(count, n)
  let keys = 0
  for (const _ of h.keys()) {
    keys++
  }
  t.is(keys, n)
  let values = 0
  for (const v of h.values()) {
    values += v.length > 0 ? 1 : 0
  }
  t.is(values, n)
  let each = 0
  h.forEach(() => {
    each++
  })
  t.is(each, n)
  t.is(h.size, n)
  t.is(snapshotSize(h), n)
  h.close()
})

test('batch boundaries: maps of 255, 256, 257, 512 and 513 entries are iterated whole', (t) => {
  for (const n of [0, 1, 255, 256, 257, 511, 512, 513]) {
    const h = filled(n)
    t.is([...h].length, n, `entries of ${n}`)
    t.is([...h.keys()].length, n, `keys of ${n}`)
    t.is([...h.values()].length, n, `values of ${n}`)
    t.is(new Set(h.keys()).size, n)
    h.close()
  }
})

test('the snapshot is taken at the call of entries(): writes after it are not seen, even before the first next()', (t) => {
  const h = filled(1000)
  const it = h.entries()
  const keys = h.keys()
  const values = h.values()
  h.set(5000, 'added after the call')
  h.delete(0)
  h.set(1, 'changed after the call')
  h.clear()
  t.is(h.size, 0)
  const got = new Map(it)
  t.is(got.size, 1000)
  t.false(got.has(5000))
  t.is(got.get(0), 'v0')
  t.is(got.get(1), 'v1')
  t.is([...keys].length, 1000)
  t.false([...values].includes('changed after the call'))
  h.close()
})

test('writes during iteration are not seen by it (in one thread, between batches)', (t) => {
  const h = filled(3000)
  let n = 0
  for (const [k] of h) {
    if (n === 0) {
      for (let i = 0; i < 3000; i++) {
        h.delete(i)
      }
      for (let i = 10_000; i < 13_000; i++) {
        h.set(i, 'new')
      }
    }
    t.true(k < 3000, `key ${k} was written after the iteration started`)
    n++
  }
  t.is(n, 3000)
  t.is(h.size, 3000)
  // forEach too: its callback writing the map does not change what it visits.
  let visits = 0
  h.forEach((_v, k, m) => {
    visits++
    m.delete(k)
    m.set(k + 100_000, 'x')
  })
  t.is(visits, 3000)
  t.is(h.size, 3000)
  h.close()
})

test('an iterator goes on after its handle is closed (its snapshot keeps the entries)', (t) => {
  const h = filled(2000)
  const token = h.share()
  const it = h.values()
  t.is(it.next().done, false)
  h.close()
  throwsHamt(t, () => Hamt.attach(token), Error, 'ERR_HAMT_STALE_TOKEN')
  let n = 1
  for (const v of it) {
    t.is(typeof v, 'string')
    n++
  }
  t.is(n, 2000)
})

test('forEach: an error thrown by fn propagates and stops the iteration', (t) => {
  const h = filled(1000)
  const stop = new Error('stop')
  let calls = 0
  const e = t.throws(() =>
    h.forEach(() => {
      calls++
      if (calls === 10) {
        throw stop
      }
    }),
  )
  t.is(e, stop)
  t.is(calls, 10)
  h.close()
})

test('forEach with a fn that is not a function is a TypeError ERR_HAMT_INVALID_ARGUMENT', (t) => {
  const h = filled(3)
  for (const bad of [undefined, null, 1, 'f', {}, [], Symbol('f')]) {
    throwsHamt(t, () => h.forEach(unchecked<() => void>(bad)), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'Hamt.forEach', 'fn')
  }
  h.close()
})

/** Retired nodes counted for the live maps: the frozen nodes a snapshot holds are retired when it lets go. */
function retired(): number {
  return stats().retiredNodes
}

// These tests read process-wide counters: serial, so that no other test of this file runs meanwhile.
test.serial('breaking out of a for-of releases the iterator\'s snapshot at once', async (t) => {
  await settle()
  const n = 4000
  const h = filled(n)
  let held = 0
  let r1 = 0
  for (const _ of h) {
    const r0 = retired()
    h.clear() // every node of the trie is now held by the iterator's snapshot only
    r1 = retired()
    held = r1 - r0
    break
  }
  const released = retired() - r1
  t.true(held < n / 4, `while the iterator was alive, clear() retired ${held} nodes of ${n} entries`)
  t.true(released >= n, `breaking out retired ${released} nodes (at least the ${n} leaves expected)`)
  h.close()
})

test.serial('an iterator read to its end, or stopped with return(), releases its snapshot', async (t) => {
  await settle()
  const n = 3000
  for (const how of ['end', 'return'] as const) {
    const h = filled(n)
    const it = h.keys()
    it.next()
    const r0 = retired()
    h.clear()
    const r1 = retired()
    if (how === 'end') {
      for (const _ of it) {
        // read on
      }
    } else {
      it.return?.(undefined)
    }
    const r2 = retired()
    t.true(r1 - r0 < n / 4, `${how}: held while alive`)
    t.true(r2 - r1 >= n, `${how}: released ${r2 - r1} nodes`)
    h.close()
  }
  // forEach whose fn throws, and destructuring (which closes the iterator after one element).
  {
    const h = filled(n)
    let r1 = 0
    t.throws(() =>
      h.forEach(() => {
        h.clear()
        r1 = retired()
        throw new Error('out')
      }),
    )
    t.true(retired() - r1 >= n, 'forEach releases its snapshot when fn throws')
    h.close()
  }
  {
    const h = filled(n)
    const it = h.entries()
    const [first] = it
    t.truthy(first)
    const r1 = retired()
    h.clear()
    t.true(retired() - r1 >= n, 'destructuring one element released the snapshot')
    h.close()
  }
})

test.serial('return() on an iterator before its first next() releases its snapshot', async (t) => {
  await settle()
  const n = 3000
  const h = filled(n)
  let freed = 0
  let after: IteratorResult<[number, string]> | undefined
  try {
    const it = h.entries()
    it.return?.(undefined)
    after = it.next()
    const r1 = retired()
    h.clear()
    freed = retired() - r1
  } finally {
    h.close()
  }
  t.deepEqual(after, { done: true, value: undefined })
  t.true(freed >= n, `clear() after return() retired ${freed} nodes: the abandoned iterator still holds its snapshot`)
})

test.serial('an iterator dropped without being finished is released by the garbage collector', async (t) => {
  await settle()
  const n = 3000
  const h = filled(n)
  let held = 0
  let ok = false
  let got = 0
  try {
    ;(() => {
      const it = h.entries()
      it.next()
    })()
    ;(() => {
      h.keys() // never started
    })()
    const r1 = retired()
    h.clear()
    held = retired() - r1
    // The two snapshots share their nodes (no write between them): at least the n leaves.
    ok = await collectUntil(() => retired() - r1 >= n)
    got = retired() - r1
  } finally {
    h.close()
  }
  t.true(held < n / 4, 'held while not collected')
  t.true(ok, `after gc, ${got} nodes retired (the ${n} leaves at least expected)`)
})

/** Lets the garbage of earlier tests go (their maps leave the counters), so that the counters move only with this test. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc()
    await turn()
  }
}
