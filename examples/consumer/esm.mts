// A strict ESM consumer: every public method with the types a user would write.
import { Hamt, type HamtHandle, type HamtStats, type Key } from 'concurrent-hamt'
import { Worker } from 'node:worker_threads'

interface User {
  name: string
  visits: number
}

const users = new Hamt<string, User>([['ada', { name: 'Ada', visits: 1 }]])
const ada: User | undefined = users.get('ada')
const chained: Hamt<string, User> = users.set('bob', { name: 'Bob', visits: 0 })
const present: boolean = users.has('ada') && users.delete('bob') && users.setIfAbsent('cy', { name: 'Cy', visits: 0 })
const previous: User | undefined = users.swap('ada', { name: 'Ada', visits: 2 })
const swapped: boolean = users.compareAndSet('ada', previous, undefined)
const updated: User | undefined = users.update('cy', (u) => (u ? { ...u, visits: u.visits + 1 } : undefined))
const some: (User | undefined)[] = users.getMany(['ada', 'cy'])
users.setMany(new Map([['dee', { name: 'Dee', visits: 3 }]]))
const size: number = users.size
for (const [name, user] of users) {
  const n: string = name
  const v: number = user.visits
  void n, v
}
const names: string[] = [...users.keys()]
const all: User[] = Array.from(users.values())
const pairs: [string, User][] = [...users.entries()]
users.forEach((user, name, map) => {
  const m: Hamt<string, User> = map
  void user.name, name.length, m
})

// Counters: the overloads give number for number deltas and bigint for bigint deltas.
const counts = new Hamt<string, number>()
const c1: number = counts.increment('a')
const c2: number = counts.increment('a', 2.5)
const big = new Hamt<Uint8Array, bigint>()
const c3: bigint = big.increment(new Uint8Array([1]), 1n)

// Sharing.
const handle: HamtHandle = counts.share()
const again: Hamt<string, number> = Hamt.attach<string, number>(handle)
const fromMap: Hamt<string, number> = Hamt.attach(counts)
new Worker('./worker.js', { workerData: { handle, counts } }).unref()
const stats: HamtStats = Hamt.stats()
const snap: Hamt<string, number> = counts.snapshot()

// Disposal: `using` closes the handle at the end of the block.
{
  using scoped = counts.snapshot()
  const n: number = scoped.size
  void n
}
snap[Symbol.dispose]()
again.close()
fromMap.close()
const closed: boolean = again.closed

// Keys are restricted to the key types.
const anyKeys = new Hamt()
anyKeys.set(1n, 'a').set(true, null).set(new Uint8Array(2), [1, 2])
const k: Key = 'x'
// @ts-expect-error: objects are not keys
anyKeys.set({}, 1)
// @ts-expect-error: a map of string keys takes no number keys
users.get(1)
// @ts-expect-error: values keep their type
counts.set('a', 'not a number')

export { ada, chained, present, swapped, updated, some, size, names, all, pairs, c1, c2, c3, stats, closed, k }
