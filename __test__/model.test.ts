// Property-based: random operation sequences on a Hamt and its snapshots behave as on JS Maps
// (the model and the arbitraries are in _model.ts). Fixed number of runs; on failure the
// report gives the seed and the shrunk counterexample (rerun with FC_SEED=<seed>).
import test from 'ava'
import fc from 'fast-check'
import { Hamt, type Key } from 'concurrent-hamt'
import { canon, same, seedFromEnv, show, snapshotSize } from './_helpers'
import { entriesMatch, entry, key, Mismatch, op, runOps, value, type Entry } from './_model'

const seed = seedFromEnv('FC_SEED')
/** Runs per property: 200 by default (FC_RUNS=n for a longer search). */
const runs = Number(process.env['FC_RUNS'] ?? 200)

test('random operation sequences on a Hamt and its snapshots behave as on JS Maps', (t) => {
  const result = fc.check(fc.property(fc.array(op, { minLength: 1, maxLength: 80, size: 'max' }), runOps), { numRuns: runs, seed })
  if (result.failed) {
    t.fail(`${fc.defaultReportMessage(result) ?? 'failed'}\n${String(result.errorInstance)}\n(rerun with FC_SEED=${seed})`)
  }
  t.false(result.failed)
  t.is(result.numRuns, runs)
})

test('random keys: set then get, has and iteration agree with a Map (many keys per map)', (t) => {
  const result = fc.check(
    fc.property(fc.array(fc.tuple(key, value), { maxLength: 300, size: 'max' }), fc.array(key, { maxLength: 50 }), (entries, probes) => {
      const h = new Hamt<Key, unknown>(entries)
      const model = new Map<unknown, Entry>()
      for (const [k, v] of entries) {
        model.set(canon(k), entry(k, v))
      }
      try {
        const pair = { hamt: h, model }
        entriesMatch(pair, [...h], 'iteration')
        for (const k of [...probes, ...entries.map((e) => e[0])]) {
          const m = model.get(canon(k))
          if (h.has(k) !== (m !== undefined) || !same(h.get(k), m?.value)) {
            throw new Mismatch(`key ${show(k)}: has ${h.has(k)} get ${show(h.get(k))}, model ${show(m?.value)}`)
          }
        }
        if (h.size !== model.size || snapshotSize(h) !== model.size) {
          throw new Mismatch(`size ${h.size}, model ${model.size}`)
        }
      } finally {
        h.close()
      }
    }),
    { numRuns: Math.ceil(runs / 2), seed },
  )
  if (result.failed) {
    t.fail(`${fc.defaultReportMessage(result) ?? 'failed'}\n${String(result.errorInstance)}\n(rerun with FC_SEED=${seed})`)
  }
  t.false(result.failed)
})
