// @ts-check
// The smoke suite of the npm package on a foreign architecture (run by scripts/cross/test.sh
// under qemu with Debian's Node 18): every API method, one map shared by two workers with exact
// counters, a snapshot, and bad input. node:test, since ava needs Node 20.
'use strict'
const test = require('node:test')
const assert = require('node:assert')
const { Hamt } = require('concurrent-hamt')
const { sharedByWorkers, handOffAndRelease } = require('./sharing.js')

/** @param {string} code */
const withCode = (code) => (/** @type {unknown} */ e) => /** @type {{code?: string}} */ (e).code === code

test('every method', () => {
  const h = new Hamt(/** @type {[import('concurrent-hamt').Key, unknown][]} */ ([['a', 1], [2, 'two']]))
  assert.strictEqual(h.size, 2)
  assert.strictEqual(h.get('a'), 1)
  assert.strictEqual(h.set('b', { x: [1, 2] }), h)
  assert.deepStrictEqual(h.get('b'), { x: [1, 2] })
  assert.strictEqual(h.has(2), true)
  assert.strictEqual(h.has('2'), false)
  assert.strictEqual(h.delete(2), true)
  assert.strictEqual(h.delete(2), false)
  assert.strictEqual(h.setIfAbsent('a', 9), false)
  assert.strictEqual(h.setIfAbsent('c', 3), true)
  assert.strictEqual(h.swap('c', 4), 3)
  assert.strictEqual(h.compareAndSet('c', 4, 5), true)
  assert.strictEqual(h.compareAndSet('c', 4, 6), false)
  assert.strictEqual(h.compareAndSet('new', undefined, 1), true)
  assert.strictEqual(h.compareAndSet('new', 1, undefined), true)
  assert.strictEqual(h.has('new'), false)
  assert.strictEqual(h.update('c', (v) => /** @type {number} */ (v) * 10), 50)
  assert.strictEqual(h.increment('n'), 1)
  assert.strictEqual(h.increment('n', 2.5), 3.5)
  assert.strictEqual(h.increment('big', 2n ** 70n), 2n ** 70n)
  assert.deepStrictEqual(h.getMany(['a', 'zz', 'c']), [1, undefined, 50])
  h.setMany([['m1', 1], ['m2', 2]])
  const bytes = new Uint8Array([1, 2, 3])
  h.set(bytes, Buffer.from('buf'))
  assert.ok(Buffer.isBuffer(h.get(new Uint8Array([1, 2, 3]))))
  h.set(-0, 'zero').set(NaN, 'nan')
  assert.strictEqual(h.get(0), 'zero')
  assert.strictEqual(h.get(NaN), 'nan')
  const entries = [...h]
  assert.strictEqual(entries.length, h.size)
  assert.deepStrictEqual(new Set([...h.keys()].map(String)), new Set(entries.map(([k]) => String(k))))
  assert.strictEqual([...h.values()].length, h.size)
  let seen = 0
  h.forEach(() => seen++)
  assert.strictEqual(seen, h.size)
  const stats = Hamt.stats()
  assert.ok(stats.maps >= 1 && stats.handles >= 1)
  h.clear()
  assert.strictEqual(h.size, 0)
  h.close()
  assert.strictEqual(h.closed, true)
})

test('a snapshot is independent and exact', () => {
  const h = new Hamt()
  for (let i = 0; i < 5000; i++) h.set(i, i)
  const s = h.snapshot()
  h.clear()
  h.set('after', 1)
  assert.strictEqual(s.size, 5000)
  assert.strictEqual(s.get(4999), 4999)
  assert.strictEqual(s.has('after'), false)
  let sum = 0
  for (const v of s.values()) sum += /** @type {number} */ (v)
  assert.strictEqual(sum, (4999 * 5000) / 2)
  s[Symbol.dispose]()
  h.close()
})

test('one map shared by two workers', sharedByWorkers)
test('a Hamt handed to a worker, and released', handOffAndRelease)

test('bad input is a TypeError or RangeError with a code, never a crash', () => {
  const h = new Hamt()
  assert.throws(() => h.get(/** @type {never} */ ({})), withCode('ERR_HAMT_INVALID_KEY'))
  assert.throws(() => h.set(/** @type {never} */ (Symbol('k')), 1), TypeError)
  assert.throws(() => h.set('f', () => 1), withCode('ERR_HAMT_INVALID_VALUE'))
  assert.throws(() => h.increment('x', /** @type {never} */ ('1')), withCode('ERR_HAMT_INVALID_DELTA'))
  assert.throws(() => h.increment('x', Infinity), RangeError)
  h.set('s', 'text')
  assert.throws(() => h.increment('s'), withCode('ERR_HAMT_NOT_A_COUNTER'))
  assert.throws(() => h.update('s', /** @type {never} */ (1)), withCode('ERR_HAMT_INVALID_ARGUMENT'))
  assert.throws(() => Hamt.attach(/** @type {never} */ ({ kind: 'concurrent-hamt', token: 'nope' })), withCode('ERR_HAMT_INVALID_TOKEN'))
  assert.throws(() => Hamt.attach(/** @type {never} */ ({ kind: 'concurrent-hamt', token: '0'.repeat(32) })), withCode('ERR_HAMT_STALE_TOKEN'))
  h.close()
  assert.throws(() => h.get('s'), withCode('ERR_HAMT_CLOSED'))
})
