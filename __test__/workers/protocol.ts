// The messages between the tests and their worker scripts.
import type { HamtHandle } from 'concurrent-hamt'

/** A handle as a worker receives it: a token, or a Hamt that went through structured clone. */
export type Shared = HamtHandle | { readonly handle: HamtHandle }

/** What tasks.js does, by kind. */
export type Task =
  /** Write keys `w<id>:<i>`, wait for all, then read every worker's keys. */
  | { kind: 'disjoint'; map: Shared; id: number; workers: number; perWorker: number; sync: SharedArrayBuffer }
  /** setIfAbsent on shared keys `claim:<i>` with its id, wait for all, then read them all. */
  | { kind: 'claim'; map: Shared; id: number; workers: number; keys: number; sync: SharedArrayBuffer }
  /** swap `<id>:<j>` into shared keys, recording what each swap returned. */
  | { kind: 'swap'; map: Shared; id: number; keys: number; rounds: number; sync: SharedArrayBuffer; workers: number }
  /** increment shared counters, recording what each increment returned. */
  | { kind: 'increment'; map: Shared; id: number; n: number; counters: number; sync: SharedArrayBuffer; workers: number }
  /** A counter made with get + compareAndSet loops on one shared key. */
  | { kind: 'cas-counter'; map: Shared; n: number; sync: SharedArrayBuffer; workers: number }
  /** update a shared counter and a shared structured record, recording results and fn runs. */
  | { kind: 'update'; map: Shared; id: number; n: number; sync: SharedArrayBuffer; workers: number }
  /** Write chains `c<id>:<i>` (values) and `p<id>:<i>` (presence) in order, round after round, until told to stop. */
  | { kind: 'chain'; map: Shared; id: number; length: number; control: SharedArrayBuffer }
  /** update(key) whose fn, on its first run, waits for the writer to change the entry. */
  | { kind: 'contend-updater'; map: Shared; key: string; control: SharedArrayBuffer }
  /** Waits for the updater's fn to start, then sets the key. */
  | { kind: 'contend-writer'; map: Shared; key: string; control: SharedArrayBuffer }
  /** Blocks forever inside update's fn (slot 0 set to 1 first), to be terminated there. */
  | { kind: 'stuck-in-update'; map: Shared; key: string; control: SharedArrayBuffer }
  /** Blocks forever inside a getter that v8.serialize runs during set (slot 0 set to 1 first). */
  | { kind: 'stuck-in-serialize'; map: Shared; key: string; control: SharedArrayBuffer }
  /** Attaches what it got (a token or a Hamt), writes, and posts its own Hamt back. */
  | { kind: 'echo'; map: Shared }

export interface DisjointResult {
  readonly kind: 'disjoint'
  readonly seen: number
  readonly wrong: string[]
}
export interface ClaimResult {
  readonly kind: 'claim'
  readonly won: number[]
  readonly view: number[]
}
export interface SwapResult {
  readonly kind: 'swap'
  readonly returned: (string | undefined)[]
}
export interface IncrementResult {
  readonly kind: 'increment'
  /** Per counter, the values the increments returned. */
  readonly numbers: number[][]
  readonly bigs: bigint[]
}
export interface UpdateResult {
  readonly kind: 'update'
  readonly counts: number[]
  readonly records: number[]
  readonly runs: number
}
export interface CasResult {
  readonly kind: 'cas'
  readonly retries: number
}
export interface ChainResult {
  readonly kind: 'chain'
  readonly rounds: number
}
export interface ContendResult {
  readonly kind: 'contend'
  readonly args: unknown[]
  readonly result: unknown
}
export interface EchoResult {
  readonly kind: 'echo'
  /** What the worker received, as it received it. */
  readonly received: unknown
  readonly sizeSeen: number
  /** The worker's own Hamt, sent as it is. */
  readonly back: unknown
}
export type TaskResult = DisjointResult | ClaimResult | SwapResult | IncrementResult | UpdateResult | CasResult | ChainResult | ContendResult | EchoResult

/** hold.js: opens handles and leaves them open, then ends as told. */
export interface HoldTask {
  readonly map: Shared
  readonly handles: number
  readonly mode: 'return' | 'exit' | 'throw' | 'spin' | 'wait'
  /** Slot 0: set to 1 once the handles are open (and, for 'spin', incremented as it writes). */
  readonly control: SharedArrayBuffer
}

/** churn.js: writes forever (until terminated) with every kind of operation. */
export interface ChurnTask {
  readonly map: Shared
  readonly id: number
  readonly keys: number
  readonly seed: number
  /** Slot id: the worker's count of operations done. */
  readonly progress: SharedArrayBuffer
}

/** nested.js: a worker that attaches, writes, and starts the next level. */
export interface NestedTask {
  readonly map: Shared
  readonly depth: number
  readonly maxDepth: number
}
export interface NestedResult {
  readonly depth: number
  /** Whether each earlier level's key was visible on arrival. */
  readonly sawParents: boolean[]
  /** Whether the child's key was visible after it exited. */
  readonly sawChild: boolean | null
  readonly child: NestedResult | null
  readonly receivedKind: 'token' | 'hamt'
}
