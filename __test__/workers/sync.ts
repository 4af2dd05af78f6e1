// Synchronization between the test's threads through a SharedArrayBuffer (workers only:
// Atomics.wait blocks).

/** Waits until every one of `parties` threads has arrived at slot `index` of `cells`. */
export function barrier(cells: Int32Array, index: number, parties: number, timeoutMs = 20_000): void {
  Atomics.add(cells, index, 1)
  Atomics.notify(cells, index)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = Atomics.load(cells, index)
    if (v >= parties) {
      return
    }
    if (Date.now() > deadline) {
      throw new Error(`barrier timed out (${v} of ${parties})`)
    }
    Atomics.wait(cells, index, v, 100)
  }
}

/** Waits until slot `index` of `cells` holds at least `value`. */
export function waitFor(cells: Int32Array, index: number, value: number, timeoutMs = 20_000): void {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = Atomics.load(cells, index)
    if (v >= value) {
      return
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for cell ${index} to reach ${value} (it is ${v})`)
    }
    Atomics.wait(cells, index, v, 100)
  }
}

/** Stores `value` in slot `index` and wakes its waiters. */
export function signal(cells: Int32Array, index: number, value: number): void {
  Atomics.store(cells, index, value)
  Atomics.notify(cells, index)
}
