// Bad input of every kind: keys, values, deltas, callbacks, entries, tokens. Each is a
// TypeError/RangeError/Error with a code and a message naming the method and the argument,
// and leaves the map unchanged.
import test from 'ava'
import { Hamt, type HamtHandle, type Key } from 'concurrent-hamt'
import { codeOf, throwsHamt, unchecked } from './_helpers'
import { configure } from '#binding'
import v8 = require('node:v8')

type AnyHamt = Hamt<Key, unknown>

/** Bad keys, with the type the message names. */
const badKeys: [unknown, string][] = [
  [Symbol('k'), 'symbol'],
  [() => 1, 'function'],
  [{}, 'object'],
  [[1], 'object'],
  [new Date(0), 'object'],
  [new Map(), 'object'],
  [Object(1), 'object'],
  [new DataView(new ArrayBuffer(2)), 'object'],
  [new ArrayBuffer(2), 'object'],
  [null, 'null'],
  [undefined, 'undefined'],
  [new Int32Array([1]), 'a typed array other than Uint8Array'],
  [new Uint16Array([1]), 'a typed array other than Uint8Array'],
  [new Uint8ClampedArray([1]), 'a typed array other than Uint8Array'],
  [new Float64Array([1]), 'a typed array other than Uint8Array'],
  [new BigInt64Array([1n]), 'a typed array other than Uint8Array'],
]

/** Runs of the update fns below (none expected: a bad key is rejected first). */
let fnCalls = 0

/** Every use of a key argument: the method, the argument's name in messages, the call. */
const keyUses: [string, string, (h: AnyHamt, k: Key) => unknown][] = [
  ['get', 'key', (h, k) => h.get(k)],
  ['has', 'key', (h, k) => h.has(k)],
  ['set', 'key', (h, k) => h.set(k, 1)],
  ['delete', 'key', (h, k) => h.delete(k)],
  ['setIfAbsent', 'key', (h, k) => h.setIfAbsent(k, 1)],
  ['swap', 'key', (h, k) => h.swap(k, 1)],
  ['compareAndSet', 'key', (h, k) => h.compareAndSet(k, undefined, 1)],
  [
    'update',
    'key',
    (h, k) =>
      h.update(k, () => {
        fnCalls++
        return 1
      }),
  ],
  ['increment', 'key', (h, k) => h.increment(k)],
  ['increment', 'key', (h, k) => h.increment(k, 1n)],
  ['getMany', 'keys[0]', (h, k) => h.getMany([k])],
  ['getMany', 'keys[2]', (h, k) => h.getMany(['ok', 1, k])],
  ['setMany', 'entries[0][0]', (h, k) => h.setMany([[k, 1]])],
]

test('every key argument of every method rejects symbols, functions, objects, null, undefined and other typed arrays', (t) => {
  const h: AnyHamt = new Hamt()
  h.set('present', 'value')
  for (const [method, arg, call] of keyUses) {
    for (const [bad, got] of badKeys) {
      throwsHamt(t, () => call(h, unchecked<Key>(bad)), TypeError, 'ERR_HAMT_INVALID_KEY', `Hamt.${method}: ${arg}`, `got ${got}`)
    }
  }
  t.is(fnCalls, 0, "update's fn never ran for a bad key")
  t.is(h.size, 1)
  t.is(h.get('present'), 'value')
  h.close()
})

test('a bad key in getMany/setMany names its index; setMany stops there', (t) => {
  const h: AnyHamt = new Hamt()
  throwsHamt(t, () => h.getMany(['a', 'b', unchecked<Key>(null)]), TypeError, 'ERR_HAMT_INVALID_KEY', 'Hamt.getMany: keys[2]', 'got null')
  throwsHamt(t, () => h.setMany([['a', 1], [unchecked<Key>({}), 2], ['c', 3]]), TypeError, 'ERR_HAMT_INVALID_KEY', 'entries[1][0]', 'got object')
  t.is(h.get('a'), 1)
  t.false(h.has('c'))
  throwsHamt(t, () => h.setMany([unchecked<[Key, unknown]>([])]), TypeError, 'ERR_HAMT_INVALID_KEY', 'entries[0][0]', 'got undefined')
  h.close()
})

test('the constructor rejects a bad key in its entries', (t) => {
  throwsHamt(t, () => new Hamt([[unchecked<Key>(Symbol('s')), 1]]), TypeError, 'ERR_HAMT_INVALID_KEY', 'entries[0][0]', 'got symbol')
  throwsHamt(t, () => new Hamt(unchecked<[Key, unknown][]>(5)), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'entries')
})

test('a method called without its key argument is an ERR_HAMT_INVALID_KEY', (t) => {
  const h: AnyHamt = new Hamt()
  const loose = h as unknown as Record<string, (...args: unknown[]) => unknown>
  for (const m of ['get', 'has', 'set', 'delete', 'setIfAbsent', 'swap', 'compareAndSet', 'increment']) {
    throwsHamt(t, () => loose[m]?.call(h), TypeError, 'ERR_HAMT_INVALID_KEY', `Hamt.${m}: key`, 'got undefined')
  }
  t.is(h.size, 0)
  h.close()
})

/** Values that cannot be cloned. */
function badValues(): [string, unknown][] {
  return [
    ['function', () => 1],
    ['symbol', Symbol('v')],
    ['object with a function', { ok: 1, f: () => 1 }],
    ['array with a symbol', [1, Symbol('s')]],
    ['SharedArrayBuffer', new SharedArrayBuffer(8)],
    ['object with a SharedArrayBuffer', { sab: new SharedArrayBuffer(8) }],
    ['WeakMap', new WeakMap()],
    ['Promise', Promise.resolve(1)],
    ['nested function', { a: { b: [{ c: () => 1 }] } }],
    ['Proxy', new Proxy({}, {})],
    ['class instance with a method-valued own property', Object.assign(new (class A {})(), { m: () => 1 })],
  ]
}

/** Every use of a value argument: the method, the argument's name in messages, the call on key 'k'. */
const valueUses: [string, string, (h: AnyHamt, v: unknown) => unknown][] = [
  ['set', 'value', (h, v) => h.set('k', v)],
  ['setIfAbsent', 'value', (h, v) => h.setIfAbsent('k', v)],
  ['setIfAbsent', 'value', (h, v) => h.setIfAbsent('absent', v)],
  ['swap', 'value', (h, v) => h.swap('k', v)],
  ['compareAndSet', 'value', (h, v) => h.compareAndSet('k', 'orig', v)],
  ['compareAndSet', 'expected', (h, v) => h.compareAndSet('k', v, 'new')],
  ['update', 'the value fn returned', (h, v) => h.update('k', () => v)],
  ['update', 'the value fn returned', (h, v) => h.update('absent', () => v)],
  ['setMany', 'entries[0][1]', (h, v) => h.setMany([['k', v]])],
  ['setMany', 'entries[1][1]', (h, v) => h.setMany([['k', 'orig'], ['k', v]])],
]

test('values that cannot be cloned are TypeErrors ERR_HAMT_INVALID_VALUE, and the map is unchanged', (t) => {
  const h: AnyHamt = new Hamt()
  h.set('k', 'orig')
  for (const [method, arg, call] of valueUses) {
    for (const [what, bad] of badValues()) {
      const e = throwsHamt(t, () => call(h, bad), TypeError, 'ERR_HAMT_INVALID_VALUE', `Hamt.${method}: ${arg}`)
      t.is(h.get('k'), 'orig', `${method} with ${what} changed the entry`)
      t.is(h.size, 1, `${method} with ${what} changed the size`)
      t.false(h.has('absent'))
      t.truthy(e.message, what)
    }
  }
  h.close()
})

test('the constructor rejects a value that cannot be cloned', (t) => {
  throwsHamt(t, () => new Hamt([['k', () => 1]]), TypeError, 'ERR_HAMT_INVALID_VALUE', 'entries[0][1]')
})

test('a value that structured clone rejects keeps the serializer\'s error as cause', (t) => {
  const h: AnyHamt = new Hamt()
  const e = throwsHamt(t, () => h.set('k', { f: () => 1 }), TypeError, 'ERR_HAMT_INVALID_VALUE', 'Hamt.set: value', 'could not be cloned')
  t.true(e.cause instanceof Error, 'cause is the error v8.serialize threw')
  t.false(h.has('k'))
  h.close()
})

test('a getter that throws during serialization: the map is unchanged and the getter\'s error is what is thrown or its cause', (t) => {
  const h: AnyHamt = new Hamt()
  h.set('k', 'orig')
  const mine = new Error('getter failed')
  const value = {
    a: 1,
    get b(): number {
      throw mine
    },
  }
  const uses: [string, () => unknown][] = [
    ['set', () => h.set('k', value)],
    ['swap', () => h.swap('k', value)],
    ['setIfAbsent', () => h.setIfAbsent('new', value)],
    ['compareAndSet value', () => h.compareAndSet('k', 'orig', value)],
    ['compareAndSet expected', () => h.compareAndSet('k', value, 'x')],
    ['update', () => h.update('k', () => value)],
    ['setMany', () => h.setMany([['k', value]])],
  ]
  for (const [name, use] of uses) {
    let thrown: unknown
    try {
      use()
    } catch (e) {
      thrown = e
    }
    const ok = thrown === mine || (thrown instanceof TypeError && codeOf(thrown) === 'ERR_HAMT_INVALID_VALUE' && thrown.cause === mine)
    t.true(ok, `${name}: threw ${String(thrown)}`)
    t.is(h.get('k'), 'orig', name)
    t.false(h.has('new'), name)
  }
  t.is(h.size, 1)
  h.close()
})

test('a getter that writes or closes the map during serialization does not break it', (t) => {
  const h: AnyHamt = new Hamt()
  const other = Hamt.attach<Key, unknown>(h)
  const writes = {
    get x(): number {
      h.set('side', 'effect')
      h.delete('gone')
      return 1
    },
  }
  h.set('gone', 1)
  h.set('k', writes)
  t.deepEqual(h.get('k'), { x: 1 })
  t.is(h.get('side'), 'effect')
  t.false(h.has('gone'))
  const closes = {
    get x(): number {
      h.close()
      return 2
    },
  }
  throwsHamt(t, () => h.set('k2', closes), Error, 'ERR_HAMT_CLOSED')
  t.true(h.closed)
  t.false(other.has('k2'))
  t.is(other.size, 2)
  // Closing from inside update's fn: the write in flight completes or not, but nothing breaks.
  const third = Hamt.attach<Key, unknown>(other)
  let r: unknown
  try {
    r = third.update('u', () => {
      third.close()
      return 'written'
    })
  } catch (e) {
    r = e
  }
  t.true(third.closed)
  t.true(r === 'written' ? other.get('u') === 'written' : codeOf(r) === 'ERR_HAMT_CLOSED' && !other.has('u'), String(r))
  other.close()
})

test('setMany rejects what is not an iterable of entries', (t) => {
  const h: AnyHamt = new Hamt()
  h.set('k', 'orig')
  for (const bad of [5, null, undefined, true, {}, 'ab', Symbol.iterator, () => 1]) {
    throwsHamt(t, () => h.setMany(unchecked<[Key, unknown][]>(bad)), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'Hamt.setMany', 'entries')
  }
  for (const item of [1, 'ab', null, undefined, true, 1n, Symbol('e')]) {
    throwsHamt(t, () => h.setMany(unchecked<[Key, unknown][]>([item])), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'Hamt.setMany: entries[0]')
    throwsHamt(t, () => h.setMany(unchecked<[Key, unknown][]>(new Set([item]))), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'Hamt.setMany: entries[0]')
  }
  // An iterable whose iteration throws: that error.
  const broken = {
    [Symbol.iterator](): Iterator<[Key, unknown]> {
      throw new RangeError('no iteration today')
    },
  }
  t.throws(() => h.setMany(broken), { instanceOf: RangeError, message: 'no iteration today' })
  // An entry whose element getter throws: that error, nothing set.
  const mine = new Error('element getter')
  const entry = Object.defineProperty([], 0, {
    get(): never {
      throw mine
    },
  })
  const e = t.throws(() => h.setMany([unchecked<[Key, unknown]>(entry)]))
  t.is(e, mine)
  t.is(h.size, 1)
  t.is(h.get('k'), 'orig')
  h.close()
})

test('getMany rejects what is not an array', (t) => {
  const h: AnyHamt = new Hamt()
  for (const bad of [undefined, null, 'abc', 1, {}, { length: 1, 0: 'a' }, new Set(['a']), new Uint8Array(1)]) {
    throwsHamt(t, () => h.getMany(unchecked<Key[]>(bad)), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'Hamt.getMany: keys')
  }
  h.close()
})

test('update rejects a fn that is not a function, before anything else happens', (t) => {
  const h: AnyHamt = new Hamt()
  h.set('k', 1)
  for (const bad of [undefined, null, 1, 'f', {}, [], Symbol('f'), new Map()]) {
    throwsHamt(t, () => h.update('k', unchecked<() => unknown>(bad)), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'Hamt.update: fn')
    throwsHamt(t, () => h.update('absent', unchecked<() => unknown>(bad)), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'Hamt.update: fn')
  }
  t.is(h.get('k'), 1)
  t.is(h.size, 1)
  // A bad key is reported first.
  throwsHamt(t, () => h.update(unchecked<Key>(null), unchecked<() => unknown>(null)), TypeError, 'ERR_HAMT_INVALID_KEY')
  h.close()
})

test('bad deltas: TypeError or RangeError ERR_HAMT_INVALID_DELTA naming the delta', (t) => {
  const h: AnyHamt = new Hamt()
  h.set('n', 1).set('b', 1n)
  for (const d of [NaN, Infinity, -Infinity]) {
    for (const k of ['n', 'b', 'absent']) {
      throwsHamt(t, () => h.increment(k, d), RangeError, 'ERR_HAMT_INVALID_DELTA', 'Hamt.increment: delta', 'finite')
    }
  }
  for (const d of ['1', true, {}, [], Symbol('d'), () => 1, new Date(), Object(1n)]) {
    for (const k of ['n', 'b', 'absent']) {
      throwsHamt(t, () => h.increment(k, unchecked<number>(d)), TypeError, 'ERR_HAMT_INVALID_DELTA', 'Hamt.increment: delta')
    }
  }
  t.is(h.get('n'), 1)
  t.is(h.get('b'), 1n)
  t.false(h.has('absent'))
  h.close()
})

// ---------------------------------------------------------------------------------------------
// Tokens

test('attach with something that is not a token is a TypeError ERR_HAMT_INVALID_TOKEN', (t) => {
  const h: AnyHamt = new Hamt()
  const good = h.share()
  const bad: unknown[] = [
    undefined,
    null,
    42,
    good.token, // the bare string is not a handle
    {},
    [],
    { token: good.token }, // no kind
    { kind: 'other', token: good.token },
    { kind: 'Concurrent-Hamt', token: good.token },
    { kind: 'concurrent-hamt' },
    { kind: 'concurrent-hamt', token: 42 },
    { kind: 'concurrent-hamt', token: null },
    { kind: 'concurrent-hamt', token: { toString: () => good.token } },
    { handle: 'x' },
    { handle: { kind: 'other', token: good.token } },
    { handle: null },
  ]
  for (const b of bad) {
    throwsHamt(t, () => Hamt.attach(unchecked<HamtHandle>(b)), TypeError, 'ERR_HAMT_INVALID_TOKEN', 'Hamt.attach')
  }
  t.is(Hamt.stats().handles >= 1, true)
  h.close()
})

test('attach with a malformed token string (truncated, extended, uppercase, garbage) is a TypeError ERR_HAMT_INVALID_TOKEN', (t) => {
  const h: AnyHamt = new Hamt()
  const { token } = h.share()
  t.regex(token, /^[0-9a-f]{32}$/)
  const forged = [
    '',
    token.slice(0, 31),
    token.slice(1),
    token.slice(0, 16),
    `${token}0`,
    `${token}${token}`,
    token.toUpperCase(),
    `${token.slice(0, 31)}G`,
    `${token.slice(0, 31)}g`,
    'z'.repeat(32),
    ` ${token.slice(1)}`,
    `${token.slice(0, 31)}\n`,
    '\0'.repeat(32),
    'é'.repeat(16), // 32 bytes of UTF-8
    'é'.repeat(32),
    '0x' + token.slice(2),
    '-' + token.slice(1),
    '😀'.repeat(8),
  ].filter((f) => f !== token)
  for (const f of forged) {
    throwsHamt(t, () => Hamt.attach({ kind: 'concurrent-hamt', token: f }), TypeError, 'ERR_HAMT_INVALID_TOKEN', 'Hamt.attach', 'token')
  }
  t.is(h.size, 0)
  h.close()
})

test('attach with a well-formed token that names no live map is an Error ERR_HAMT_STALE_TOKEN', (t) => {
  const h: AnyHamt = new Hamt()
  const { token } = h.share()
  const flip = (token[0] === '0' ? '1' : '0') + token.slice(1)
  for (const f of [flip, '0'.repeat(32), 'f'.repeat(32), '0123456789abcdef0123456789abcdef']) {
    throwsHamt(t, () => Hamt.attach({ kind: 'concurrent-hamt', token: f }), Error, 'ERR_HAMT_STALE_TOKEN', 'Hamt.attach')
  }
  // Closed: the token is stale.
  const copy = Hamt.attach<Key, unknown>(h)
  h.close()
  const again = Hamt.attach<Key, unknown>(h.handle) // share() throws on a closed handle; its handle stays readable
  t.is(again.size, 0, 'another handle keeps the map alive')
  again.close()
  copy.close()
  throwsHamt(t, () => Hamt.attach({ kind: 'concurrent-hamt', token }), Error, 'ERR_HAMT_STALE_TOKEN', 'Hamt.attach')
  throwsHamt(t, () => Hamt.attach(h), Error, 'ERR_HAMT_STALE_TOKEN')
  throwsHamt(t, () => Hamt.attach({ handle: h.handle }), Error, 'ERR_HAMT_STALE_TOKEN')
})

test('random 32-digit tokens never attach and never crash', (t) => {
  const live = new Hamt()
  let stale = 0
  for (let i = 0; i < 2000; i++) {
    let s = ''
    for (let j = 0; j < 32; j++) {
      s += '0123456789abcdef'[Math.floor(Math.random() * 16)]
    }
    try {
      Hamt.attach({ kind: 'concurrent-hamt', token: s })
      if (s !== live.share().token) {
        t.fail(`a forged token ${s} attached`)
      }
    } catch (e) {
      if (codeOf(e) === 'ERR_HAMT_STALE_TOKEN') {
        stale++
      }
    }
  }
  t.is(stale, 2000)
  live.close()
})

test('the binding’s configure checks the refusal buffer the JS layer hands it, and keeps its first values', (t) => {
  // index.js calls configure once per thread with v8.serialize, v8.deserialize and a 4-byte
  // ArrayBuffer in which the binding counts the calls that failed but could not throw
  // (crates/node/src/env.rs). A buffer too small to count in, or no buffer, is refused.
  for (const bad of [new ArrayBuffer(3), new Int32Array(1), {}, undefined]) {
    throwsHamt(t, () => configure(v8.serialize, v8.deserialize, bad as ArrayBuffer), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'configure: refusals')
  }
  throwsHamt(t, () => configure(unchecked(1), v8.deserialize, new ArrayBuffer(4)), TypeError, 'ERR_HAMT_INVALID_ARGUMENT', 'configure: serialize')
  // A second, valid call changes nothing: structured values still round-trip, and a call
  // that fails and throws leaves nothing counted (the next call does not throw ERR_HAMT_NAPI).
  configure(() => new Uint8Array(0), () => 0, new ArrayBuffer(4))
  const h = new Hamt<string, unknown>()
  h.set('d', { at: new Date(5), tags: new Map([['a', 1]]) })
  t.deepEqual(h.get('d'), { at: new Date(5), tags: new Map([['a', 1]]) })
  throwsHamt(t, () => h.set('f', unchecked(() => 1)), TypeError, 'ERR_HAMT_INVALID_VALUE')
  t.is(h.get('f'), undefined)
  t.deepEqual(h.get('d'), { at: new Date(5), tags: new Map([['a', 1]]) })
  h.close()
})
