import test from 'ava'
import { Hamt } from 'concurrent-hamt'

test('a new map is empty, set and get round-trip', (t) => {
  const h = new Hamt<string, number>()
  t.is(h.size, 0)
  t.is(h.set('a', 1), h)
  t.is(h.get('a'), 1)
  t.is(h.size, 1)
  h.close()
})
