import { describe, expect, it } from 'vitest';
import {
  ACTIVE_OUTBOX_STATES,
  FINAL_OUTBOX_STATES,
  OUTBOX_STATES,
  OUTBOX_TRANSITIONS,
  OutboxTransitionError,
  assertTransition,
  canTransition,
  statesLeadingTo,
} from '../../src/store/outbox-states.js';
import { StoreError } from '../../src/store/errors.js';
import type { OutboxState } from '../../src/store/store.js';

const ALLOWED: Array<[OutboxState, OutboxState]> = [
  ['pending', 'in_flight'],
  ['pending', 'superseded'],
  ['in_flight', 'done'],
  ['in_flight', 'retry'],
  ['in_flight', 'dead'],
  ['in_flight', 'pending'],
  ['retry', 'in_flight'],
  ['retry', 'superseded'],
  ['dead', 'pending'],
  ['done', 'pending'],
];

describe('outbox state machine', () => {
  it('allows exactly the transitions of the table', () => {
    for (const from of OUTBOX_STATES) {
      for (const to of OUTBOX_STATES) {
        const expected = ALLOWED.some(([f, t]) => f === from && t === to);
        expect(canTransition(from, to), `${from} -> ${to}`).toBe(expected);
        if (expected) expect(() => assertTransition(from, to)).not.toThrow();
      }
    }
  });

  it('throws a typed error with a stable code', () => {
    try {
      assertTransition('superseded', 'pending');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(OutboxTransitionError);
      expect(err).toBeInstanceOf(StoreError);
      const e = err as OutboxTransitionError;
      expect(e.code).toBe('OUTBOX_INVALID_TRANSITION');
      expect([e.from, e.to]).toEqual(['superseded', 'pending']);
    }
    expect(() => assertTransition('pending', 'done')).toThrow(OutboxTransitionError);
    expect(() => assertTransition('retry', 'dead')).toThrow(/retry to dead/);
  });

  it('knows final, active and predecessor states', () => {
    expect(FINAL_OUTBOX_STATES).toEqual(['superseded']);
    expect(new Set(ACTIVE_OUTBOX_STATES)).toEqual(new Set(['pending', 'retry', 'in_flight']));
    expect(statesLeadingTo('done')).toEqual(['in_flight']);
    expect(new Set(statesLeadingTo('pending'))).toEqual(new Set(['in_flight', 'dead', 'done']));
    expect(new Set(statesLeadingTo('superseded'))).toEqual(new Set(['pending', 'retry']));
    expect(Object.isFrozen(OUTBOX_TRANSITIONS)).toBe(true);
  });
});
