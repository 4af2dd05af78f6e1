// The ways exiter.ts ends, and its task (shared by the worker and exit-records.test.ts).
import type { Shared } from '../../workers/protocol'

export type ExitMode =
  | 'return-holding-iterators'
  | 'exit-in-update'
  | 'exit-in-iteration'
  | 'exit-in-getter'
  | 'throw-in-update'
  | 'throw-in-iteration'
  | 'terminate-in-update'
  | 'terminate-in-iteration'

export const EXIT_MODES: readonly ExitMode[] = [
  'return-holding-iterators',
  'exit-in-update',
  'exit-in-iteration',
  'exit-in-getter',
  'throw-in-update',
  'throw-in-iteration',
  'terminate-in-update',
  'terminate-in-iteration',
]

export interface ExitTask {
  readonly map: Shared
  readonly id: number
  readonly mode: ExitMode
  /** Swaps on its own keys of the shared map before it ends. */
  readonly writes: number
  /** Levels of nested update() (each on another map). */
  readonly depth: number
  /** Whether its snapshot and iterators are of a map of its own (else of the shared map). */
  readonly ownIterators: boolean
  /** Iterators left open (each holds a hazard record). */
  readonly iterators: number
  /**
   * Slot 0: 1 once the worker is at its holding point; slot 1: the process's hazard records in
   * use seen there; slot 2: what the terminate modes wait on (never changed).
   */
  readonly control: SharedArrayBuffer
}
