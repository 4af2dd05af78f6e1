// The model of the property-based tests (model.test.ts): arbitraries for keys, values and
// operation sequences, and the runner that checks a Hamt against JS Maps.
//
// Every run drives one Hamt (and the writable snapshots it takes) and one model per map: a
// `Map` keyed by `canon(key)` (primitives as they are, byte arrays by content), holding the
// value set. Each operation's result (or error code) must be the model's, and at the end of
// the run each map iterates exactly its model's entries. Fixed number of runs; on failure the
// report gives the seed and the shrunk counterexample (rerun with FC_SEED=<seed>).
import fc from 'fast-check'
import { Hamt, type Key } from 'concurrent-hamt'
import * as v8 from 'node:v8'
import { canon, codeOf, same, sameStored, show, snapshotSize, storedKind } from './_helpers'

// ---------------------------------------------------------------------------------------------
// Arbitraries

/** Code units that matter: ASCII, Latin-1, beyond, lone surrogates of both kinds, NUL. */
const unit = fc.oneof(
  fc.constantFrom('a', 'b', '\0', 'é', '\u00ff', '\u0100', '€', '\ud800', '\udbff', '\udc00', '\udfff', '\ufffd'),
  fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)),
)
const str = fc.oneof(
  fc.string({ unit, maxLength: 8 }),
  fc.string({ unit, minLength: 60, maxLength: 70 }), // around the binding's inline buffer
)

const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 6 }),
  fc.uint8Array({ maxLength: 6 }).map((b) => Buffer.from(b)),
  // A view at an offset into a larger buffer.
  fc.tuple(fc.uint8Array({ maxLength: 6 }), fc.integer({ min: 1, max: 3 })).map(([b, off]) => {
    const big = new Uint8Array(b.length + off + 2).fill(0xee)
    big.set(b, off)
    return big.subarray(off, off + b.length)
  }),
)

/** A few keys that collide often, and the interesting ones. */
const poolKey: fc.Arbitrary<Key> = fc.constantFrom<Key>(
  'a', 'b', '1', '', '\ud800', 'é', '€', 1, 2, 0, -0, NaN, Infinity, -Infinity, 0.5, 1n, 0n, -1n, 2n ** 64n,
  -(2n ** 64n), true, false, new Uint8Array([1]), Buffer.from([1]), new Uint8Array(0), new Uint8Array([0x61]),
)
const randomKey: fc.Arbitrary<Key> = fc.oneof(
  str,
  fc.double(),
  fc.integer({ min: -5, max: 5 }),
  fc.bigInt({ min: -(2n ** 130n), max: 2n ** 130n }),
  fc.bigInt({ min: -5n, max: 5n }),
  fc.boolean(),
  bytes,
)
export const key: fc.Arbitrary<Key> = fc.oneof({ weight: 3, arbitrary: poolKey }, { weight: 2, arbitrary: randomKey })

const primitive: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(undefined, null, true, false, 0, -0, NaN, Infinity, -Infinity, '', 0n, 2n ** 63n, -(2n ** 63n), 2n ** 63n - 1n),
  fc.double(),
  fc.integer(),
  fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
  str,
)

/** Structured values: compared with deep equality after the round trip through v8.serialize. */
const { structured } = fc.letrec<{ structured: unknown; leaf: unknown }>((tie) => ({
  leaf: fc.oneof(
    primitive,
    fc.date({ noInvalidDate: true }),
    fc.int32Array({ maxLength: 4 }),
    fc.float64Array({ maxLength: 4, noNaN: true }),
    fc.bigInt64Array({ maxLength: 3 }),
    fc.int16Array({ maxLength: 3 }),
    fc.uint8ClampedArray({ maxLength: 3 }),
    bytes,
  ),
  structured: fc.oneof(
    { depthSize: 'small', maxDepth: 3 },
    tie('leaf'),
    fc.array(tie('structured'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.string({ maxLength: 4 }).filter((k) => k !== '__proto__'), tie('structured')), { maxLength: 4 })
      .map((kv) => Object.fromEntries(kv)),
    fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 3 }), fc.integer()), tie('structured')), { maxLength: 3 }).map((kv) => new Map(kv)),
    fc.array(fc.oneof(fc.string({ maxLength: 3 }), fc.integer(), fc.bigInt()), { maxLength: 4 }).map((xs) => new Set(xs)),
  ),
}))

export const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: primitive },
  { weight: 2, arbitrary: bytes },
  { weight: 3, arbitrary: structured },
)

type UpdateFn = { kind: 'delete' } | { kind: 'keep' } | { kind: 'throw' } | { kind: 'bump' } | { kind: 'set'; value: unknown }
type Expected = { kind: 'current' } | { kind: 'copy' } | { kind: 'absent' } | { kind: 'other'; value: unknown }
type IterHow = 'entries' | 'keys' | 'values' | 'forEach' | 'for-of'

export type Op =
  | { op: 'set' | 'setIfAbsent' | 'swap'; target: number; key: Key; value: unknown }
  | { op: 'get' | 'has' | 'delete'; target: number; key: Key }
  | { op: 'clear' | 'size' | 'snapshot' | 'close'; target: number }
  | { op: 'compareAndSet'; target: number; key: Key; expected: Expected; value: unknown }
  | { op: 'update'; target: number; key: Key; fn: UpdateFn }
  | { op: 'increment'; target: number; key: Key; delta: number | bigint | undefined }
  | { op: 'getMany'; target: number; keys: Key[] }
  | { op: 'setMany'; target: number; entries: [Key, unknown][] }
  | { op: 'iterate'; target: number; how: IterHow }

const target = fc.nat({ max: 3 })
const delta = fc.oneof(
  fc.constant(undefined),
  fc.integer({ min: -100, max: 100 }),
  fc.double({ noNaN: true }).filter((d) => !Object.is(d, -0)), // -0 has a test of its own
  fc.constantFrom(NaN, Infinity, -Infinity, 0.5, 1e300),
  fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }),
  fc.constantFrom(1n, -1n, 2n ** 63n),
)
const expected: fc.Arbitrary<Expected> = fc.oneof(
  fc.constant<Expected>({ kind: 'current' }),
  fc.constant<Expected>({ kind: 'copy' }),
  fc.constant<Expected>({ kind: 'absent' }),
  value.map((v): Expected => ({ kind: 'other', value: v })),
)
const updateFn: fc.Arbitrary<UpdateFn> = fc.oneof(
  fc.constantFrom<UpdateFn>({ kind: 'delete' }, { kind: 'keep' }, { kind: 'throw' }, { kind: 'bump' }),
  value.map((v): UpdateFn => ({ kind: 'set', value: v })),
)

export const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ op: fc.constantFrom('set', 'setIfAbsent', 'swap'), target, key, value }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constantFrom('get', 'has', 'delete'), target, key }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constantFrom('clear', 'close'), target }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constantFrom('size', 'snapshot'), target }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('compareAndSet'), target, key, expected, value: fc.oneof(fc.constant(undefined), value) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('update'), target, key, fn: updateFn }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('increment'), target, key, delta }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('getMany'), target, keys: fc.array(key, { maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('setMany'), target, entries: fc.array(fc.tuple(key, value), { maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('iterate'), target, how: fc.constantFrom<IterHow>('entries', 'keys', 'values', 'forEach', 'for-of') }) },
)

// ---------------------------------------------------------------------------------------------
// The model

export interface Entry {
  readonly key: Key
  readonly value: unknown
  /** For a structured value, its stored form (what compareAndSet compares). */
  readonly stored: Buffer | undefined
}

/**
 * The stored form of a structured value, as the package documents it: serialized after one
 * round trip (`serialize(deserialize(serialize(v)))`), since V8's encoding of an object
 * depends on hidden state (an array's dense or sparse encoding follows its elements kind;
 * semantics.test.ts has the cases), and one round trip makes it a fixed point.
 */
export function normal(value: unknown): Buffer {
  return v8.serialize(v8.deserialize(v8.serialize(value)))
}

/** A model entry, made right when the Hamt stores the value (its stored form is taken then). */
export function entry(key: Key, value: unknown): Entry {
  return { key, value, stored: storedKind(value) === 'serialized' ? normal(value) : undefined }
}

/** Whether `expected` matches the entry's stored form (compareAndSet's equality). */
function matches(e: Entry, expected: unknown): boolean {
  if (e.stored !== undefined) {
    return storedKind(expected) === 'serialized' && Buffer.compare(e.stored, normal(expected)) === 0
  }
  return sameStored(e.value, expected)
}

interface Pair {
  readonly hamt: Hamt<Key, unknown>
  readonly model: Map<unknown, Entry>
}

/** The outcome of an operation: a value, or an error's class and code. */
type Outcome = { ok: unknown } | { error: string; code: unknown }

export class Mismatch extends Error {}

function run(fn: () => unknown): Outcome {
  try {
    return { ok: fn() }
  } catch (e) {
    return { error: e instanceof Error ? e.constructor.name : typeof e, code: codeOf(e) }
  }
}

function failure(name: string, code: string): Outcome {
  return { error: name, code }
}

/** What get() gives back for a stored value: deep-equal, and a Buffer stays a Buffer. */
function sameOutcome(a: Outcome, b: Outcome): boolean {
  if ('ok' in a && 'ok' in b) {
    return same(a.ok, b.ok)
  }
  if ('error' in a && 'error' in b) {
    return a.error === b.error && a.code === b.code
  }
  return false
}

function showOutcome(o: Outcome): string {
  return 'ok' in o ? `ok ${show(o.ok)}` : `${o.error} ${String(o.code)}`
}

/** The model's update fn result for `cur` (and whether it throws). */
const THROWN = new Error('thrown by the update fn')
function applyFn(fn: UpdateFn, cur: unknown): unknown {
  switch (fn.kind) {
    case 'delete':
      return undefined
    case 'keep':
      return cur
    case 'throw':
      throw THROWN
    case 'bump':
      return typeof cur === 'number' ? cur + 1 : typeof cur === 'bigint' ? cur + 1n : 1
    case 'set':
      return fn.value
  }
}

export function entriesMatch(pair: Pair, got: [Key, unknown][], label: string): void {
  const seen = new Map<unknown, unknown>()
  for (const [k, v] of got) {
    const c = canon(k)
    if (seen.has(c)) {
      throw new Mismatch(`${label}: key ${show(k)} iterated twice`)
    }
    seen.set(c, v)
    const m = pair.model.get(c)
    if (m === undefined) {
      throw new Mismatch(`${label}: key ${show(k)} is not in the model`)
    }
    if (k instanceof Uint8Array && Object.getPrototypeOf(k) !== Uint8Array.prototype) {
      throw new Mismatch(`${label}: byte key ${show(k)} should come back as a plain Uint8Array`)
    }
    if (typeof k === 'number' && Object.is(k, -0)) {
      throw new Mismatch(`${label}: key -0 should come back as 0`)
    }
    if (!same(v, m.value)) {
      throw new Mismatch(`${label}: value of ${show(k)} is ${show(v)}, model ${show(m.value)}`)
    }
  }
  if (seen.size !== pair.model.size) {
    throw new Mismatch(`${label}: ${seen.size} entries iterated, model has ${pair.model.size}`)
  }
}

/** Runs one operation on the Hamt and on the model; throws a Mismatch when they differ. */
function step(pairs: Pair[], o: Op, index: number): void {
  const pair = pairs[o.target % pairs.length] as Pair
  const { hamt: h, model } = pair
  const label = `op ${index} ${o.op} on map ${o.target % pairs.length}`
  let got: Outcome
  let want: Outcome
  switch (o.op) {
    case 'set': {
      got = run(() => h.set(o.key, o.value) === h)
      model.set(canon(o.key), entry(o.key, o.value))
      want = { ok: true }
      break
    }
    case 'setIfAbsent': {
      got = run(() => h.setIfAbsent(o.key, o.value))
      const absent = !model.has(canon(o.key))
      if (absent) {
        model.set(canon(o.key), entry(o.key, o.value))
      }
      want = { ok: absent }
      break
    }
    case 'swap': {
      got = run(() => h.swap(o.key, o.value))
      want = { ok: model.get(canon(o.key))?.value }
      model.set(canon(o.key), entry(o.key, o.value))
      break
    }
    case 'get':
      got = run(() => h.get(o.key))
      want = { ok: model.get(canon(o.key))?.value }
      break
    case 'has':
      got = run(() => h.has(o.key))
      want = { ok: model.has(canon(o.key)) }
      break
    case 'delete':
      got = run(() => h.delete(o.key))
      want = { ok: model.delete(canon(o.key)) }
      break
    case 'clear':
      got = run(() => h.clear())
      model.clear()
      want = { ok: undefined }
      break
    case 'size':
      got = run(() => [h.size, snapshotSize(h)])
      want = { ok: [model.size, model.size] }
      break
    case 'snapshot': {
      if (pairs.length >= 4) {
        return
      }
      const s = h.snapshot()
      pairs.push({ hamt: s, model: new Map(model) })
      got = run(() => s.size)
      want = { ok: model.size }
      break
    }
    case 'close': {
      // Closes a snapshot (never the first map): the others must not notice.
      const i = o.target % pairs.length
      if (i === 0) {
        return
      }
      h.close()
      pairs.splice(i, 1)
      got = run(() => h.get('x'))
      want = failure('Error', 'ERR_HAMT_CLOSED')
      break
    }
    case 'compareAndSet': {
      const c = canon(o.key)
      const cur = model.get(c)
      let exp: unknown
      switch (o.expected.kind) {
        case 'current':
          exp = cur?.value
          break
        case 'copy':
          exp = cur === undefined ? undefined : h.get(o.key) // a fresh copy of the stored value
          break
        case 'absent':
          exp = undefined
          break
        case 'other':
          exp = o.expected.value
          break
      }
      const before = run(() => h.get(o.key))
      got = run(() => h.compareAndSet(o.key, exp, o.value))
      const matched = exp === undefined ? cur === undefined : cur !== undefined && matches(cur, exp)
      if ('ok' in got && got.ok !== matched) {
        throw new Mismatch(
          `${label}(${show(o.key)}, expected ${o.expected.kind} ${show(exp)}): got ${String(got.ok)}, model ${String(matched)}; ` +
            `stored before: ${showOutcome(before)}, model: ${show(cur?.value)}`,
        )
      }
      if (matched) {
        if (o.value === undefined) {
          model.delete(c)
        } else {
          model.set(c, entry(o.key, o.value))
        }
      }
      want = { ok: matched }
      break
    }
    case 'update': {
      const c = canon(o.key)
      const cur = model.get(c)
      const args: unknown[] = []
      got = run(() =>
        h.update(o.key, (x) => {
          args.push(x)
          return applyFn(o.fn, x)
        }),
      )
      if (args.length !== 1) {
        throw new Mismatch(`${label}: fn ran ${args.length} times in one thread`)
      }
      if (!same(args[0], cur?.value)) {
        throw new Mismatch(`${label}: fn got ${show(args[0])}, model ${show(cur?.value)}`)
      }
      if (o.fn.kind === 'throw') {
        const r = got
        if (!('error' in r)) {
          throw new Mismatch(`${label}: fn threw but update returned ${showOutcome(r)}`)
        }
        want = got // the identity of the error is checked below
        let thrown: unknown
        try {
          h.update(o.key, () => {
            throw THROWN
          })
        } catch (e) {
          thrown = e
        }
        if (thrown !== THROWN) {
          throw new Mismatch(`${label}: update threw ${show(thrown)}, not fn's error`)
        }
      } else {
        // What fn returned is what is stored ('keep' returns the copy it was given, whose
        // serialized form may differ from the original's).
        const next = applyFn(o.fn, args[0])
        if (next === undefined) {
          model.delete(c)
        } else {
          model.set(c, entry(o.key, next))
        }
        want = { ok: next }
      }
      break
    }
    case 'increment': {
      const c = canon(o.key)
      const cur = model.get(c)
      const d = o.delta ?? 1
      got = run(() => h.increment(o.key, o.delta))
      if (typeof d === 'number' && !Number.isFinite(d)) {
        want = failure('RangeError', 'ERR_HAMT_INVALID_DELTA')
      } else if (cur === undefined) {
        model.set(c, entry(o.key, d))
        want = { ok: d }
      } else if (typeof cur.value === 'number' && typeof d === 'number') {
        const sum = cur.value + d
        model.set(c, entry(o.key, sum))
        want = { ok: sum }
      } else if (typeof cur.value === 'bigint' && typeof d === 'bigint') {
        const sum = cur.value + d
        model.set(c, entry(o.key, sum))
        want = { ok: sum }
      } else {
        want = failure('TypeError', 'ERR_HAMT_NOT_A_COUNTER')
      }
      break
    }
    case 'getMany':
      got = run(() => h.getMany(o.keys))
      want = { ok: o.keys.map((k) => model.get(canon(k))?.value) }
      break
    case 'setMany':
      got = run(() => h.setMany(o.entries) === h)
      for (const [k, v] of o.entries) {
        model.set(canon(k), entry(k, v))
      }
      want = { ok: true }
      break
    case 'iterate': {
      let entries: [Key, unknown][]
      switch (o.how) {
        case 'entries':
          entries = [...h.entries()]
          break
        case 'for-of':
          entries = []
          for (const e of h) {
            entries.push(e)
          }
          break
        case 'forEach':
          entries = []
          h.forEach((v, k) => entries.push([k, v]))
          break
        case 'keys':
          entries = [...h.keys()].map((k) => [k, model.get(canon(k))?.value])
          break
        case 'values': {
          const values = [...h.values()]
          entries = [...h.keys()].map((k, i) => [k, values[i]])
          break
        }
      }
      entriesMatch(pair, entries, label)
      return
    }
  }
  if (!sameOutcome(got, want)) {
    throw new Mismatch(`${label}(${'key' in o ? show(o.key) : ''}): got ${showOutcome(got)}, model ${showOutcome(want)}`)
  }
}

export function runOps(ops: Op[]): void {
  const pairs: Pair[] = [{ hamt: new Hamt<Key, unknown>(), model: new Map() }]
  try {
    ops.forEach((o, i) => step(pairs, o, i))
    pairs.forEach((p, i) => {
      entriesMatch(p, [...p.hamt], `end, map ${i}`)
      if (p.hamt.size !== p.model.size) {
        throw new Mismatch(`end, map ${i}: size ${p.hamt.size}, model ${p.model.size}`)
      }
    })
  } finally {
    for (const p of pairs) {
      p.hamt.close()
    }
  }
}

