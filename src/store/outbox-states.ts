import type { OutboxState } from './store.js';
import { StoreError } from './errors.js';

/**
 * The outbox state machine as a pure table (the nango scheduler tasks.ts habit).
 *
 *   pending   -> in_flight (claimed) | superseded (a newer change for the same target)
 *   in_flight -> done | retry | dead | pending (crash recovery: pushes are idempotent)
 *   retry     -> in_flight (claimed when due) | superseded
 *   dead      -> pending (operator replay)
 *   done      -> pending (re-planned: the record drifted after our push, see below)
 *   superseded: final
 *
 * `done -> pending` exists because change keys are content hashes of the correction: when a
 * re-pulled snapshot shows that a system went back on what we pushed (an admin re-import, a
 * manual edit) the planner emits the very same key again; ignoring it would leave an opt-out
 * unenforced for good.
 *
 * Order (the SQLite store): rows of one target are decided in seq order (a re-armed row takes a
 * new seq; a superseded row decided again is replaced by a new row). A row that failed (retry),
 * came back from a crash or from the dead letters (pending) while its target has a newer row goes
 * on to superseded: pushed later, it would overwrite the newer decision.
 */
export const OUTBOX_TRANSITIONS: Readonly<Record<OutboxState, readonly OutboxState[]>> = Object.freeze({
  pending: Object.freeze(['in_flight', 'superseded'] as const),
  in_flight: Object.freeze(['done', 'retry', 'dead', 'pending'] as const),
  retry: Object.freeze(['in_flight', 'superseded'] as const),
  dead: Object.freeze(['pending'] as const),
  done: Object.freeze(['pending'] as const),
  superseded: Object.freeze([] as const),
});

export const OUTBOX_STATES: readonly OutboxState[] = Object.freeze(Object.keys(OUTBOX_TRANSITIONS) as OutboxState[]);

/** States with no way out. */
export const FINAL_OUTBOX_STATES: readonly OutboxState[] = Object.freeze(OUTBOX_STATES.filter((s) => OUTBOX_TRANSITIONS[s].length === 0));

/** States a worker still has to act on (counted in outbox depth). */
export const ACTIVE_OUTBOX_STATES: readonly OutboxState[] = Object.freeze(['pending', 'retry', 'in_flight'] as const);

export function canTransition(from: OutboxState, to: OutboxState): boolean {
  return OUTBOX_TRANSITIONS[from].includes(to);
}

/** States from which `to` may be entered: what a guarded `UPDATE ... WHERE state IN (...)` accepts. */
export function statesLeadingTo(to: OutboxState): OutboxState[] {
  return OUTBOX_STATES.filter((from) => canTransition(from, to));
}

export class OutboxTransitionError extends StoreError {
  constructor(
    readonly from: OutboxState,
    readonly to: OutboxState,
  ) {
    super('OUTBOX_INVALID_TRANSITION', `outbox item cannot go from ${from} to ${to}`);
    this.name = 'OutboxTransitionError';
  }
}

export function assertTransition(from: OutboxState, to: OutboxState): void {
  if (!canTransition(from, to)) throw new OutboxTransitionError(from, to);
}
