// The documented semantics, one edge case at a time: keys, values, the atomic operations,
// getMany/setMany, snapshots, clear, the string tag.
import test from 'ava'
import { Hamt, type Key } from 'concurrent-hamt'
import { same, show, throwsHamt, unchecked } from './_helpers'

// ---------------------------------------------------------------------------------------------
// Keys

test('1, 1n, "1" and true are four different keys; 0, 0n, "", "0" and false too', (t) => {
  const h = new Hamt<Key, string>()
  h.set(1, 'number').set(1n, 'bigint').set('1', 'string').set(true, 'boolean')
  t.is(h.size, 4)
  t.is(h.get(1), 'number')
  t.is(h.get(1n), 'bigint')
  t.is(h.get('1'), 'string')
  t.is(h.get(true), 'boolean')
  t.is(h.get(new Uint8Array([1])), undefined)
  t.is(h.get(new Uint8Array([0x31])), undefined, 'the bytes of "1" are not the key "1"')
  h.set(0, 'n0').set(0n, 'b0').set('', 'empty').set('0', 's0').set(false, 'f').set(new Uint8Array(0), 'bytes')
  t.is(h.size, 10)
  t.deepEqual(h.getMany([0, 0n, '', '0', false, new Uint8Array(0)]), ['n0', 'b0', 'empty', 's0', 'f', 'bytes'])
  h.close()
})

test('number keys are SameValueZero: -0 is 0, NaN is one key, infinities and fractions are keys', (t) => {
  const h = new Hamt<number, string>()
  h.set(-0, 'zero')
  t.is(h.get(0), 'zero')
  t.true(h.has(-0))
  h.set(0, 'zero again')
  t.is(h.size, 1)
  t.true(Object.is([...h.keys()][0], 0), 'a -0 key comes back as 0, as from a Map')
  h.set(NaN, 'nan')
  t.is(h.get(Number.NaN), 'nan')
  t.is(h.get(0 / 0), 'nan')
  // A NaN with another bit pattern is the same key.
  const other = new Float64Array(new BigUint64Array([0x7ff80000deadbeefn]).buffer)[0] as number
  t.true(Number.isNaN(other))
  t.is(h.get(other), 'nan')
  h.set(Infinity, '+inf').set(-Infinity, '-inf').set(0.1 + 0.2, 'sum').set(0.3, 'point three')
  t.is(h.get(Infinity), '+inf')
  t.is(h.get(-Infinity), '-inf')
  t.is(h.get(0.30000000000000004), 'sum')
  t.is(h.get(0.3), 'point three')
  t.is(h.get(Number.MIN_VALUE), undefined)
  h.set(Number.MIN_VALUE, 'min').set(-Number.MIN_VALUE, '-min').set(2 ** 53, 'big').set(2 ** 53 + 2, 'big2')
  t.is(h.get(Number.MIN_VALUE), 'min')
  t.is(h.get(-Number.MIN_VALUE), '-min')
  t.is(h.get(2 ** 53 + 2), 'big2')
  t.is(h.size, 10)
  const keys = [...h.keys()]
  t.is(keys.filter((k) => Number.isNaN(k)).length, 1)
  h.close()
})

test('bigint keys: negative, zero, beyond 2^64, and -0n is 0n', (t) => {
  const h = new Hamt<bigint, number>()
  const keys = [0n, 1n, -1n, 2n ** 63n - 1n, 2n ** 63n, -(2n ** 63n), 2n ** 64n - 1n, 2n ** 64n, -(2n ** 64n), 2n ** 64n + 1n, 3n ** 100n, -(3n ** 100n)]
  keys.forEach((k, i) => h.set(k, i))
  t.is(h.size, keys.length)
  keys.forEach((k, i) => t.is(h.get(k), i, `key ${k}`))
  t.is(h.get(-0n), 0)
  t.is(h.get(2n ** 64n + 2n), undefined)
  t.is(h.get(2n ** 128n), undefined, 'a word of zeros more is another number')
  const back = new Set([...h.keys()])
  for (const k of keys) {
    t.true(back.has(k), `iteration gives ${k} back`)
  }
  h.close()
})

test('string keys compare by UTF-16 code units: lone surrogates, non-Latin-1, empty, long', (t) => {
  const h = new Hamt<string, number>()
  const keys = ['', 'a', 'é', '\u00ff', '\u0100', '€', '😀', '\ud83d', '\ude00', '\ud83d\ude00x', '\ude00\ud83d', '\ufffd', '\0', 'a\0b', 'x'.repeat(62), 'x'.repeat(63), 'x'.repeat(64), 'x'.repeat(65), '€'.repeat(70), 'y'.repeat(100000)]
  keys.forEach((k, i) => h.set(k, i))
  t.is(h.size, keys.length)
  keys.forEach((k, i) => t.is(h.get(k), i, `key ${show(k.slice(0, 10))} (length ${k.length})`))
  t.is(h.get('\ud83d\ude00'), keys.indexOf('😀'), 'a surrogate pair is the same string as the emoji')
  t.is(h.get('e\u0301'), undefined, 'no Unicode normalization')
  t.is(h.get('x'.repeat(66)), undefined)
  const back = new Set([...h.keys()])
  for (const k of keys) {
    t.true(back.has(k), `iteration gives ${show(k.slice(0, 10))} back unchanged`)
  }
  h.close()
})

test('byte-array keys compare by content; a Buffer and a Uint8Array with the same bytes are one key', (t) => {
  const h = new Hamt<Key, string>()
  h.set(new Uint8Array([1, 2, 3]), 'u8')
  t.is(h.get(Buffer.from([1, 2, 3])), 'u8')
  h.set(Buffer.from([1, 2, 3]), 'buffer')
  t.is(h.size, 1)
  t.is(h.get(new Uint8Array([1, 2, 3])), 'buffer')
  // A view into a larger buffer is its own bytes only.
  const big = new Uint8Array([9, 9, 1, 2, 3, 9])
  t.is(h.get(big.subarray(2, 5)), 'buffer')
  t.is(h.get(Buffer.from(big.buffer, 2, 3)), 'buffer')
  t.is(h.get(big.subarray(2, 4)), undefined)
  h.set(big.subarray(1, 1), 'empty view')
  t.is(h.get(new Uint8Array(0)), 'empty view')
  t.is(h.get(''), undefined)
  const k = [...h.keys()].find((x) => x instanceof Uint8Array && x.length === 3)
  t.true(k instanceof Uint8Array)
  t.is(Object.getPrototypeOf(k), Uint8Array.prototype, 'iteration gives a byte key back as a plain Uint8Array')
  h.close()
})

test('a byte-array key is copied: changing the array afterwards does not change the key', (t) => {
  const h = new Hamt<Uint8Array, string>()
  const key = new Uint8Array([1, 2, 3])
  h.set(key, 'v')
  key[0] = 42
  t.is(h.get(new Uint8Array([1, 2, 3])), 'v')
  t.false(h.has(key))
  const [back] = [...h.keys()]
  t.deepEqual(back, new Uint8Array([1, 2, 3]))
  if (back !== undefined) {
    back[1] = 99 // a fresh copy: the map's key does not change
  }
  t.is(h.get(new Uint8Array([1, 2, 3])), 'v')
  t.deepEqual([...h.keys()], [new Uint8Array([1, 2, 3])])
  h.close()
})

test('a byte key changed by JavaScript that runs during the call (a getter, update\'s fn) is the key as it was at the call', (t) => {
  const h = new Hamt<Key, unknown>()
  const key = new Uint8Array([1, 1])
  h.set(key, {
    get x(): number {
      key[0] = 2 // runs inside set, while v8.serialize copies the value
      return 1
    },
  })
  t.deepEqual(h.get(new Uint8Array([1, 1])), { x: 1 })
  t.false(h.has(new Uint8Array([2, 1])))
  const k2 = new Uint8Array([5])
  h.update(k2, () => {
    k2[0] = 6
    return 'five'
  })
  t.is(h.get(new Uint8Array([5])), 'five')
  t.false(h.has(new Uint8Array([6])))
  const k3 = new Uint8Array([7])
  h.setMany([[k3, { get y(): number { k3[0] = 8; return 2 } }], [k3, 'second']])
  t.deepEqual(h.get(new Uint8Array([7])), { y: 2 })
  t.is(h.get(new Uint8Array([8])), 'second')
  // compareAndSet: the expected bytes are read before the new value's getter runs.
  const expected = new Uint8Array([3, 3])
  h.set('cas', new Uint8Array([3, 3]))
  const swapped = h.compareAndSet('cas', expected, {
    get z(): number {
      expected[0] = 4
      return 3
    },
  })
  t.true(swapped)
  t.deepEqual(h.get('cas'), { z: 3 })
  t.is(h.size, 5)
  h.close()
})

test('tokens are frozen plain data that survive JSON and structured clone', (t) => {
  const h = new Hamt<string, number>()
  h.set('a', 1)
  const token = h.share()
  t.true(Object.isFrozen(token))
  t.is(h.share(), token)
  t.deepEqual(Object.keys(h), ['handle'], 'the token is the only enumerable property of a Hamt')
  const viaJson = Hamt.attach<string, number>(JSON.parse(JSON.stringify(token)) as typeof token)
  t.is(viaJson.get('a'), 1)
  const viaClone = Hamt.attach<string, number>(structuredClone(token))
  t.is(viaClone.get('a'), 1)
  viaJson.close()
  viaClone.close()
  h.close()
})

test('the constructor takes entries (any iterable), in order', (t) => {
  const h = new Hamt<string, number>([['a', 1], ['b', 2], ['a', 3]])
  t.is(h.size, 2)
  t.is(h.get('a'), 3)
  const fromMap = new Hamt(new Map([['x', 1]]))
  t.is(fromMap.get('x'), 1)
  function* gen(): Generator<[string, number]> {
    yield ['g', 7]
  }
  const fromGen = new Hamt(gen())
  t.is(fromGen.get('g'), 7)
  const empty = new Hamt(null)
  t.is(empty.size, 0)
  for (const m of [h, fromMap, fromGen, empty]) {
    m.close()
  }
})

// ---------------------------------------------------------------------------------------------
// Values

test('primitive values round-trip exactly (-0, NaN, bigints, strings with lone surrogates)', (t) => {
  const h = new Hamt<number, unknown>()
  const values: unknown[] = [undefined, null, true, false, 0, -0, NaN, Infinity, -Infinity, 1.5, -1e308, Number.MIN_VALUE, 0n, -1n, 2n ** 63n - 1n, 2n ** 63n, -(2n ** 63n), -(2n ** 63n) - 1n, 2n ** 64n, -(5n ** 99n), '', 'abc', 'é\u00ff', '€', '\ud800', 'a\udc00b', 'z'.repeat(200), '€'.repeat(1000)]
  values.forEach((v, i) => h.set(i, v))
  values.forEach((v, i) => {
    t.true(Object.is(h.get(i), v), `value ${show(v)} came back as ${show(h.get(i))}`)
  })
  t.is(h.size, values.length)
  h.close()
})

test('set(k, undefined) stores undefined: has is true, size counts it, iteration yields it', (t) => {
  const h = new Hamt<string, unknown>()
  t.is(h.set('u', undefined), h)
  t.true(h.has('u'))
  t.is(h.size, 1)
  t.is(h.get('u'), undefined)
  t.deepEqual([...h], [['u', undefined]])
  t.deepEqual([...h.values()], [undefined])
  t.true(h.delete('u'))
  t.false(h.has('u'))
  t.false(h.delete('u'))
  h.close()
})

test('byte arrays come back as what they were: a Buffer as a Buffer, a Uint8Array as a Uint8Array', (t) => {
  const h = new Hamt<string, unknown>()
  h.set('buf', Buffer.from('hello'))
  h.set('u8', new Uint8Array([1, 2, 3]))
  h.set('view', new Uint8Array([0, 1, 2, 3, 4]).subarray(1, 3))
  h.set('empty', Buffer.alloc(0))
  const buf = h.get('buf')
  t.true(Buffer.isBuffer(buf))
  t.deepEqual(buf, Buffer.from('hello'))
  const u8 = h.get('u8')
  t.is(Object.getPrototypeOf(u8), Uint8Array.prototype)
  t.deepEqual(u8, new Uint8Array([1, 2, 3]))
  const view = h.get('view')
  t.true(view instanceof Uint8Array)
  t.deepEqual(view, new Uint8Array([1, 2]))
  t.is((view as Uint8Array).byteLength, 2)
  t.true(Buffer.isBuffer(h.get('empty')))
  t.is((h.get('empty') as Buffer).length, 0)
  // Each read is a new copy.
  const again = h.get('u8') as Uint8Array
  again[0] = 100
  t.deepEqual(h.get('u8'), new Uint8Array([1, 2, 3]))
  t.not(h.get('u8'), h.get('u8'))
  h.close()
})

test('structured values round-trip by structured clone and are copies both ways', (t) => {
  const h = new Hamt<string, unknown>()
  const cyclic: { name: string; self?: unknown } = { name: 'c' }
  cyclic.self = cyclic
  const values: Record<string, unknown> = {
    object: { a: 1, b: 'two', c: [3, { d: 4n }], e: undefined, f: null, g: -0, h: NaN },
    array: [1, 'a', [2, [3]], { x: 1 }, undefined, null],
    date: new Date(86400000 * 365),
    map: new Map<unknown, unknown>([['a', 1], [2, { b: 3 }], [3n, new Set([1, 2])]]),
    set: new Set(['x', 1, 2n]),
    nested: { m: new Map([['d', new Date(0)]]), s: new Set([[1, 2]]), t: new Int32Array([1, -2]) },
    int32: new Int32Array([1, -1, 2 ** 31 - 1]),
    float64: new Float64Array([1.5, -0, Infinity]),
    bigint64: new BigInt64Array([1n, -(2n ** 63n)]),
    clamped: new Uint8ClampedArray([0, 255]),
    uint16: new Uint16Array([65535]),
    bufferInside: { b: Buffer.from([1, 2]), u: new Uint8Array([3]) },
    regexp: /a+b/gi,
    arrayBuffer: new Uint8Array([5, 6, 7]).buffer,
    boxed: [Object(1), Object('s'), Object(true)],
    emptyObject: {},
    emptyArray: [],
  }
  for (const [k, v] of Object.entries(values)) {
    h.set(k, v)
  }
  for (const [k, v] of Object.entries(values)) {
    const got = h.get(k)
    t.true(same(got, v), `${k}: ${show(got)} should deep-equal ${show(v)}`)
    t.not(got, v, `${k} is a copy`)
  }
  h.set('cyclic', cyclic)
  const c = h.get('cyclic') as { name: string; self: unknown }
  t.is(c.name, 'c')
  t.is(c.self, c, 'cycles survive')
  // Changing the original after set, or the copy after get, does not change the map.
  const o = { list: [1, 2] }
  h.set('o', o)
  o.list.push(3)
  t.deepEqual(h.get('o'), { list: [1, 2] })
  const got = h.get('o') as { list: number[] }
  got.list.push(4)
  t.deepEqual(h.get('o'), { list: [1, 2] })
  t.true(Buffer.isBuffer((h.get('bufferInside') as { b: unknown }).b), 'a Buffer inside an object stays a Buffer')
  h.close()
})

test('large values and keys round-trip', (t) => {
  const h = new Hamt<Key, unknown>()
  const bigString = 'v'.repeat(1 << 20)
  const bigBytes = new Uint8Array(1 << 20).map((_, i) => i & 0xff)
  const bigObject = { items: Array.from({ length: 10000 }, (_, i) => ({ i, s: `item ${i}` })) }
  h.set('s', bigString).set(bigBytes, 'bytes key').set('o', bigObject)
  t.is(h.get('s'), bigString)
  t.is(h.get(bigBytes.slice()), 'bytes key')
  t.deepEqual(h.get('o'), bigObject)
  h.close()
})

// ---------------------------------------------------------------------------------------------
// setIfAbsent, swap

test('setIfAbsent inserts only when there is no entry (a stored undefined is an entry)', (t) => {
  const h = new Hamt<string, unknown>()
  t.true(h.setIfAbsent('a', 1))
  t.false(h.setIfAbsent('a', 2))
  t.is(h.get('a'), 1)
  h.set('u', undefined)
  t.false(h.setIfAbsent('u', 3))
  t.true(h.has('u'))
  t.is(h.get('u'), undefined)
  t.true(h.setIfAbsent('v', undefined))
  t.true(h.has('v'))
  t.is(h.size, 3)
  h.close()
})

test('swap stores and returns the previous value (undefined when absent)', (t) => {
  const h = new Hamt<string, unknown>()
  t.is(h.swap('a', 1), undefined)
  t.true(h.has('a'))
  t.is(h.swap('a', { x: 2 }), 1)
  t.deepEqual(h.swap('a', Buffer.from([1])), { x: 2 })
  const prev = h.swap('a', undefined)
  t.true(Buffer.isBuffer(prev))
  t.true(h.has('a'), 'swap with undefined stores undefined')
  t.is(h.size, 1)
  h.close()
})

// ---------------------------------------------------------------------------------------------
// compareAndSet

test('compareAndSet: expected undefined means absent, and a stored undefined is not absent', (t) => {
  const h = new Hamt<string, unknown>()
  t.true(h.compareAndSet('a', undefined, 1), 'absent matches undefined')
  t.is(h.get('a'), 1)
  t.false(h.compareAndSet('a', undefined, 2), 'present does not match undefined')
  t.is(h.get('a'), 1)
  h.set('u', undefined)
  t.false(h.compareAndSet('u', undefined, 3), 'a stored undefined is not absent')
  t.true(h.has('u'))
  t.is(h.get('u'), undefined)
  t.true(h.compareAndSet('none', undefined, undefined), 'absent stays absent: success')
  t.false(h.has('none'))
  t.false(h.compareAndSet('a', undefined, undefined))
  t.true(h.has('a'))
  h.close()
})

test('compareAndSet: value undefined deletes the entry', (t) => {
  const h = new Hamt<string, unknown>()
  h.set('a', 'x').set('b', { o: 1 })
  t.false(h.compareAndSet('a', 'y', undefined))
  t.true(h.has('a'))
  t.true(h.compareAndSet('a', 'x', undefined))
  t.false(h.has('a'))
  t.true(h.compareAndSet('b', { o: 1 }, undefined))
  t.false(h.has('b'))
  t.is(h.size, 0)
  h.close()
})

test('compareAndSet compares stored forms: property order, 0 and -0, NaN, number and bigint, Buffer and Uint8Array', (t) => {
  const h = new Hamt<string, unknown>()
  h.set('o', { a: 1, b: 2 })
  t.false(h.compareAndSet('o', { b: 2, a: 1 }, 'reordered'), 'same properties in another order differ')
  t.deepEqual(h.get('o'), { a: 1, b: 2 })
  t.true(h.compareAndSet('o', { a: 1, b: 2 }, 'same order'), 'an equal object in the same order matches')
  t.is(h.get('o'), 'same order')

  h.set('z', 0)
  t.false(h.compareAndSet('z', -0, 'minus zero'))
  t.is(h.get('z'), 0)
  t.true(h.compareAndSet('z', 0, -0))
  t.true(Object.is(h.get('z'), -0))
  t.false(h.compareAndSet('z', 0, 1))
  t.true(h.compareAndSet('z', -0, 1))

  h.set('n', NaN)
  t.true(h.compareAndSet('n', Number.NaN, 'was NaN'), 'NaN matches NaN')

  h.set('i', 1)
  t.false(h.compareAndSet('i', 1n, 2))
  t.false(h.compareAndSet('i', '1', 2))
  t.false(h.compareAndSet('i', true, 2))
  t.true(h.compareAndSet('i', 1, 2))
  h.set('big', 2n ** 70n)
  t.true(h.compareAndSet('big', 2n ** 70n, 2n ** 70n + 1n))
  t.is(h.get('big'), 2n ** 70n + 1n)

  h.set('bytes', new Uint8Array([1, 2]))
  t.false(h.compareAndSet('bytes', Buffer.from([1, 2]), 'x'), 'a Buffer is stored apart from a Uint8Array')
  t.false(h.compareAndSet('bytes', new Uint8Array([1, 3]), 'x'))
  t.true(h.compareAndSet('bytes', new Uint8Array([9, 1, 2]).subarray(1), 'x'))

  h.set('null', null)
  t.false(h.compareAndSet('null', undefined, 'x'))
  t.true(h.compareAndSet('null', null, 'x'))

  h.set('d', new Date(5))
  t.true(h.compareAndSet('d', new Date(5), new Map([[1, 2]])))
  t.true(h.compareAndSet('d', new Map([[1, 2]]), 'done'))
  t.is(h.get('d'), 'done')
  h.close()
})

test('compareAndSet with the value get() returned succeeds when nothing changed (the read-compute-CAS loop)', (t) => {
  const h = new Hamt<string, unknown>()
  const failed: string[] = []
  for (const v of [{ a: { b: 1 } }, new Date(1), [], [1, 2], ['x'], { list: [] }, { list: [1] }, [[]], new Map([['k', []]]), new Set([1])]) {
    h.set('k', v)
    const cur = h.get('k')
    if (!h.compareAndSet('k', cur, 'next')) {
      failed.push(show(v))
    }
  }
  t.deepEqual(failed, [], 'compareAndSet(k, get(k), next) failed for these values although no write came between')
  h.close()
})

test('compareAndSet with the very object that was stored succeeds while its content is unchanged', (t) => {
  const h = new Hamt<string, unknown>()
  const x = [1, 2]
  h.set('k', x)
  // Same content as before (JSON, deep equality), but V8 now keeps the array as "holey".
  x[3] = 0
  x.length = 2
  t.deepEqual(x, [1, 2])
  t.true(h.compareAndSet('k', x, 'next'), 'the same unchanged array no longer matches what set stored')
  h.close()
})

test('a CAS loop on a structured value terminates', (t) => {
  const h = new Hamt<string, { items: number[] }>()
  h.set('k', { items: [] })
  let attempts = 0
  for (;;) {
    attempts++
    const cur = h.get('k')
    if (h.compareAndSet('k', cur, { items: [...(cur?.items ?? []), 1] }) || attempts > 100) {
      break
    }
  }
  t.is(attempts, 1, `${attempts} attempts without any other writer`)
  t.deepEqual(h.get('k'), { items: [1] })
  h.close()
})

// ---------------------------------------------------------------------------------------------
// update

test('update stores fn(current) and returns it; undefined deletes', (t) => {
  const h = new Hamt<string, unknown>()
  const seen: unknown[] = []
  t.is(
    h.update('a', (cur) => {
      seen.push(cur)
      return 1
    }),
    1,
  )
  t.is(h.get('a'), 1)
  t.deepEqual(
    h.update('a', (cur) => {
      seen.push(cur)
      return { prev: cur }
    }),
    { prev: 1 },
  )
  t.is(
    h.update('a', (cur) => {
      seen.push(cur)
      return undefined
    }),
    undefined,
  )
  t.false(h.has('a'))
  t.deepEqual(seen, [undefined, 1, { prev: 1 }])
  t.is(
    h.update('absent', () => undefined),
    undefined,
  )
  t.false(h.has('absent'), 'undefined for an absent key leaves it absent')
  h.set('u', undefined)
  let arg: unknown = 'not called'
  t.is(
    h.update('u', (cur) => {
      arg = cur
      return 'was undefined'
    }),
    'was undefined',
  )
  t.is(arg, undefined)
  t.is(h.size, 1)
  h.close()
})

test('update passes a copy of the current value, called once without contention, with this undefined', (t) => {
  const h = new Hamt<string, { list: number[] }>()
  h.set('a', { list: [1] })
  let calls = 0
  let self: unknown = 'unset'
  h.update('a', function (this: unknown, cur) {
    calls++
    self = this
    cur?.list.push(2) // a copy: changing it does not change the map
    return { list: [7] }
  })
  t.is(calls, 1)
  t.is(self, undefined)
  t.deepEqual(h.get('a'), { list: [7] })
  // Still once right after a snapshot (the first write after one copies its path).
  const snap = h.snapshot()
  calls = 0
  h.update('a', (cur) => {
    calls++
    return { list: [...(cur?.list ?? []), 8] }
  })
  t.is(calls, 1)
  t.deepEqual(h.get('a'), { list: [7, 8] })
  t.deepEqual(snap.get('a'), { list: [7] })
  snap.close()
  h.close()
})

test('update: fn throwing leaves the map unchanged and propagates the exact error', (t) => {
  const h = new Hamt<string, unknown>()
  h.set('a', 'orig')
  const boom = new Error('boom')
  const e = t.throws(() =>
    h.update('a', () => {
      throw boom
    }),
  )
  t.is(e, boom)
  t.is(h.get('a'), 'orig')
  // Not only Error objects.
  const thrown = { reason: 'not an error' }
  let caught: unknown
  try {
    h.update('b', () => {
      throw thrown
    })
  } catch (x) {
    caught = x
  }
  t.is(caught, thrown)
  t.false(h.has('b'))
  t.is(h.size, 1)
  // The map still works after an aborted write.
  t.is(
    h.update('a', (cur) => `${String(cur)}!`),
    'orig!',
  )
  h.close()
})

// An update's fn runs inside the trie's write: a write or a snapshot of the same map from
// inside it would make that write start again, and fn run again, forever (on one thread). So
// they throw ERR_HAMT_REENTRANT there; reads are allowed. (Re-runs under real contention, from
// other threads, are tested in workers.test.ts.)

test('update: fn writing the same map throws ERR_HAMT_REENTRANT, and nothing is written', (t) => {
  const h = new Hamt<number, number>()
  for (let i = 0; i < 2000; i++) {
    h.set(i, i)
  }
  const writes: [string, (m: Hamt<number, number>) => unknown][] = [
    ['Hamt.set', (m) => m.set(5, 50)],
    ['Hamt.set', (m) => m.set(-1, 1)], // the key being updated
    ['Hamt.delete', (m) => m.delete(6)],
    ['Hamt.setIfAbsent', (m) => m.setIfAbsent(-2, 1)],
    ['Hamt.swap', (m) => m.swap(5, 1)],
    ['Hamt.compareAndSet', (m) => m.compareAndSet(5, 5, 1)],
    ['Hamt.increment', (m) => m.increment(5)],
    ['Hamt.update', (m) => m.update(5, (v) => v)],
    ['Hamt.setMany', (m) => m.setMany([[5, 1]])],
    ['Hamt.clear', (m) => m.clear()],
  ]
  for (const [name, write] of writes) {
    let calls = 0
    throwsHamt(
      t,
      () =>
        h.update(-1, (cur) => {
          calls++
          write(h)
          return (cur ?? 0) + 1
        }),
      Error,
      'ERR_HAMT_REENTRANT',
      name,
    )
    t.is(calls, 1, `${name}: fn ran once`)
    // Through another handle on the same map too.
    const other = Hamt.attach<number, number>(h)
    throwsHamt(
      t,
      () =>
        h.update(-1, () => {
          write(other)
          return 1
        }),
      Error,
      'ERR_HAMT_REENTRANT',
      name,
    )
    other.close()
  }
  t.false(h.has(-1))
  t.is(h.get(5), 5)
  t.is(h.get(6), 6)
  t.is(h.size, 2000)
  // After the update (even one that threw), writes work again.
  h.set(5, 50)
  t.is(h.get(5), 50)
  h.close()
})

test('update: fn may read the same map, and write another map', (t) => {
  const h = new Hamt<number, number>()
  const log = new Hamt<string, number>()
  for (let i = 0; i < 2000; i++) {
    h.set(i, i)
  }
  let calls = 0
  const result = h.update(-1, (cur) => {
    calls++
    log.increment('calls')
    return (cur ?? 0) + (h.get(7) ?? 0) + h.getMany([8, 9]).reduce<number>((a, b) => a + (b ?? 0), 0) + (h.has(10) ? 0 : 1000)
  })
  t.is(result, 7 + 8 + 9)
  t.is(h.get(-1), 24)
  t.is(calls, 1)
  t.is(log.get('calls'), 1)
  h.close()
  log.close()
})

test('update: fn iterating or snapshotting the same map throws ERR_HAMT_REENTRANT (instead of re-running forever)', (t) => {
  const h = new Hamt<number, number>()
  for (let i = 0; i < 100; i++) {
    h.set(i, i)
  }
  const uses: [string, () => unknown][] = [
    ['Hamt iteration', () => [...h.values()]],
    ['Hamt iteration', () => h.forEach(() => undefined)],
    ['Hamt iteration', () => h.keys()],
    ['Hamt.snapshot', () => h.snapshot()],
  ]
  for (const [name, use] of uses) {
    let calls = 0
    throwsHamt(
      t,
      () =>
        h.update(-1, () => {
          calls++
          use()
          return 1
        }),
      Error,
      'ERR_HAMT_REENTRANT',
      name,
    )
    t.is(calls, 1)
  }
  t.false(h.has(-1))
  // Outside the update, iteration and snapshots work.
  t.is([...h.values()].length, 100)
  const s = h.snapshot()
  t.is(s.size, 100)
  s.close()
  h.close()
})

// ---------------------------------------------------------------------------------------------
// increment

test('increment: delta defaults to 1, absent counts as 0, returns the new value', (t) => {
  const h = new Hamt<string, number | bigint>()
  t.is(h.increment('a'), 1)
  t.is(h.increment('a'), 2)
  t.is(h.increment('a', undefined), 3)
  t.is(h.increment('a', 2.5), 5.5)
  t.is(h.increment('a', -10), -4.5)
  t.is(h.get('a'), -4.5)
  t.is(h.increment('b', 0.1), 0.1)
  t.is(h.increment('b', 0.2), 0.1 + 0.2)
  t.is(h.increment('big', 5n), 5n)
  t.is(h.increment('big', -7n), -2n)
  t.is(h.size, 3)
  h.set('max', Number.MAX_VALUE)
  t.is(h.increment('max', Number.MAX_VALUE), Infinity, 'a finite delta may overflow to Infinity, as + does')
  h.set('nan', NaN)
  t.true(Number.isNaN(h.increment('nan', 1)))
  h.close()
})

test('increment: absent plus -0 is 0, as 0 + -0 is in JavaScript', (t) => {
  const h = new Hamt<string, number>()
  const r = h.increment('a', -0)
  t.true(Object.is(r, 0), `increment of an absent key by -0 returned ${show(r)}`)
  t.true(Object.is(h.get('a'), 0), `and stored ${show(h.get('a'))}`)
  h.set('m', -0)
  t.true(Object.is(h.increment('m', -0), -0), '-0 + -0 is -0')
  h.close()
})

test('increment: bigints are exact across 64 bits, both ways', (t) => {
  const h = new Hamt<string, bigint>()
  const max = 2n ** 63n - 1n
  t.is(h.increment('c', max), max)
  t.is(h.increment('c', 1n), 2n ** 63n)
  t.is(h.increment('c', 2n ** 64n), 2n ** 64n + 2n ** 63n)
  t.is(h.increment('c', -(2n ** 64n) - 1n), max)
  t.is(h.increment('c', -max), 0n)
  t.is(h.increment('c', -(2n ** 63n)), -(2n ** 63n))
  t.is(h.increment('c', -1n), -(2n ** 63n) - 1n)
  t.is(h.increment('c', 3n ** 80n), 3n ** 80n - 2n ** 63n - 1n)
  t.is(h.get('c'), 3n ** 80n - 2n ** 63n - 1n)
  h.close()
})

test('increment: number and bigint do not mix; other stored values are not counters', (t) => {
  const h = new Hamt<string, unknown>()
  h.set('n', 1).set('b', 1n).set('s', '1').set('u', undefined).set('o', { n: 1 }).set('nul', null).set('bool', true).set('bytes', new Uint8Array([1]))
  throwsHamt(t, () => h.increment('n', 1n), TypeError, 'ERR_HAMT_NOT_A_COUNTER', 'Hamt.increment', 'number', 'bigint')
  throwsHamt(t, () => h.increment('b', 1), TypeError, 'ERR_HAMT_NOT_A_COUNTER', 'Hamt.increment', 'number', 'bigint')
  throwsHamt(t, () => h.increment('b'), TypeError, 'ERR_HAMT_NOT_A_COUNTER')
  for (const k of ['s', 'u', 'o', 'nul', 'bool', 'bytes']) {
    throwsHamt(t, () => h.increment(k), TypeError, 'ERR_HAMT_NOT_A_COUNTER', 'Hamt.increment')
    throwsHamt(t, () => h.increment(k, 1n), TypeError, 'ERR_HAMT_NOT_A_COUNTER', 'Hamt.increment')
  }
  t.is(h.get('n'), 1)
  t.is(h.get('b'), 1n)
  t.is(h.get('s'), '1')
  t.true(h.has('u'))
  t.deepEqual(h.get('o'), { n: 1 })
  t.is(h.size, 8)
  h.close()
})

test('increment: NaN and infinite deltas are RangeErrors, other non-numbers TypeErrors; the map is unchanged', (t) => {
  const h = new Hamt<string, unknown>()
  h.set('a', 5)
  for (const d of [NaN, Infinity, -Infinity]) {
    throwsHamt(t, () => h.increment('a', d), RangeError, 'ERR_HAMT_INVALID_DELTA', 'Hamt.increment: delta')
    throwsHamt(t, () => h.increment('absent', d), RangeError, 'ERR_HAMT_INVALID_DELTA')
  }
  for (const d of ['1', true, {}, [1], Object(1), Object(1n), Symbol('d'), () => 1]) {
    throwsHamt(t, () => h.increment('a', unchecked<number>(d)), TypeError, 'ERR_HAMT_INVALID_DELTA', 'Hamt.increment: delta')
  }
  t.is(h.get('a'), 5)
  t.false(h.has('absent'))
  t.is(h.size, 1)
  h.close()
})

test('increment: a null delta is a TypeError (it is not the default delta)', (t) => {
  const h = new Hamt<string, number>()
  h.set('a', 5)
  throwsHamt(t, () => h.increment('a', unchecked<number>(null)), TypeError, 'ERR_HAMT_INVALID_DELTA', 'Hamt.increment: delta', 'null')
  t.is(h.get('a'), 5)
  h.close()
})

// ---------------------------------------------------------------------------------------------
// getMany, setMany

test('getMany returns each key\'s value in order (absent, duplicate and mixed keys)', (t) => {
  const h = new Hamt<Key, unknown>()
  h.set('a', 1).set(1, 'one').set(new Uint8Array([1]), { b: true }).set('u', undefined)
  const got = h.getMany(['a', 'missing', 1, 'a', Buffer.from([1]), 'u', 1n])
  t.deepEqual(got, [1, undefined, 'one', 1, { b: true }, undefined, undefined])
  t.is(got.length, 7)
  t.deepEqual(h.getMany([]), [])
  h.close()
})

test('setMany sets each entry in order (arrays, Maps, generators), returns this, last one wins', (t) => {
  const h = new Hamt<Key, unknown>()
  t.is(h.setMany([['a', 1], ['b', 2], ['a', 3]]), h)
  t.is(h.get('a'), 3)
  h.setMany(new Map<Key, unknown>([[1, 'x'], [new Uint8Array([7]), 'y']]))
  function* entries(): Generator<readonly [Key, unknown]> {
    yield ['g1', { v: 1 }]
    yield ['g2', undefined]
  }
  h.setMany(entries())
  h.setMany(new Set<readonly [Key, unknown]>([['s', 's']]))
  h.setMany([])
  t.is(h.size, 7)
  t.deepEqual(h.getMany(['a', 'b', 1, Buffer.from([7]), 'g1', 'g2', 's']), [3, 2, 'x', 'y', { v: 1 }, undefined, 's'])
  t.true(h.has('g2'))
  // Array-likes with more than two elements: the rest is ignored.
  h.setMany([unchecked<readonly [Key, unknown]>(['extra', 1, 2])])
  t.is(h.get('extra'), 1)
  h.close()
})

test('setMany acts key by key: the entries before a bad one are set, the rest are not', (t) => {
  const h = new Hamt<string, unknown>()
  throwsHamt(t, () => h.setMany([['a', 1], ['b', () => 2], ['c', 3]]), TypeError, 'ERR_HAMT_INVALID_VALUE', 'entries[1][1]')
  t.is(h.get('a'), 1)
  t.false(h.has('b'))
  t.false(h.has('c'))
  h.close()
})

// ---------------------------------------------------------------------------------------------
// snapshot, clear, misc

test('a snapshot is independent both ways and its size is exact', (t) => {
  const h = new Hamt<number, string>()
  for (let i = 0; i < 1000; i++) {
    h.set(i, `v${i}`)
  }
  const s = h.snapshot()
  t.is(s.size, 1000)
  t.not(s.share().token, h.share().token, 'a snapshot is a new map, with its own token')
  for (let i = 0; i < 500; i++) {
    h.delete(i)
  }
  h.set(5000, 'new in h')
  s.set(6000, 'new in s')
  s.set(999, 'changed in s')
  t.is(h.size, 501)
  t.is(s.size, 1001)
  t.is(s.get(0), 'v0')
  t.is(s.get(5000), undefined)
  t.is(h.get(6000), undefined)
  t.is(h.get(999), 'v999')
  t.is(s.get(999), 'changed in s')
  const s2 = s.snapshot()
  s.clear()
  t.is(s.size, 0)
  t.is(s2.size, 1001)
  t.is(h.size, 501)
  t.is([...s2.keys()].length, 1001)
  // Closing the original leaves the snapshots working.
  h.close()
  t.is(s2.get(1), 'v1')
  s2.set(1, 'after close')
  t.is(s2.get(1), 'after close')
  t.is(Hamt.attach(s2.share()).get(1), 'after close')
  s.close()
  s2.close()
})

test('snapshot of an empty map, and writes after many snapshots', (t) => {
  const h = new Hamt<string, number>()
  const empty = h.snapshot()
  t.is(empty.size, 0)
  t.deepEqual([...empty], [])
  const snaps: Hamt<string, number>[] = []
  for (let i = 0; i < 20; i++) {
    h.set(`k${i}`, i)
    snaps.push(h.snapshot())
  }
  snaps.forEach((s, i) => {
    t.is(s.size, i + 1)
    t.is(s.get(`k${i}`), i)
    t.is(s.get(`k${i + 1}`), undefined)
  })
  for (const s of snaps) {
    s.close()
  }
  empty.close()
  h.close()
})

test('clear removes everything, atomically for a snapshot taken before', (t) => {
  const h = new Hamt<number, number>()
  for (let i = 0; i < 3000; i++) {
    h.set(i, i)
  }
  const it = h.entries()
  const s = h.snapshot()
  h.clear()
  t.is(h.size, 0)
  t.false(h.has(1))
  t.deepEqual([...h], [])
  t.is(s.size, 3000)
  t.is([...it].length, 3000)
  h.set(1, 1)
  t.is(h.size, 1)
  s.clear()
  t.is(h.size, 1)
  h.clear()
  h.clear()
  t.is(h.size, 0)
  s.close()
  h.close()
})

test('Symbol.toStringTag is "Hamt"', (t) => {
  const h = new Hamt()
  t.is(Object.prototype.toString.call(h), '[object Hamt]')
  t.is(String(h), '[object Hamt]')
  t.is(h[Symbol.toStringTag], 'Hamt')
  h.close()
  t.is(Object.prototype.toString.call(h), '[object Hamt]')
})

test('set and setMany return this; a Hamt is an instance of Hamt, attach gives another handle on the same map', (t) => {
  const h = new Hamt<string, number>()
  t.is(h.set('a', 1), h)
  t.true(h instanceof Hamt)
  const other = Hamt.attach(h)
  t.not(other, h)
  t.true(other instanceof Hamt)
  t.deepEqual(other.share(), h.share())
  other.set('b', 2)
  t.is(h.get('b'), 2)
  const third = Hamt.attach<string, number>(h.share())
  t.is(third.size, 2)
  // A Hamt through structured clone is a plain object that attach accepts.
  const cloned: unknown = structuredClone(h)
  t.false(cloned instanceof Hamt)
  t.deepEqual(cloned, { handle: h.share() })
  const fourth = Hamt.attach(unchecked<{ handle: ReturnType<Hamt['share']> }>(cloned))
  t.is(fourth.get('a'), 1)
  for (const x of [h, other, third, fourth]) {
    x.close()
  }
})
