/**
 * fast-check arbitraries over a deliberately small universe (2 subjects, few sources, purposes
 * and times minutes apart around a 5-minute skew) so collisions, ties and skew cases happen.
 */
import fc from 'fast-check';
import { toObservation, type Channel, type Observation, type ObservationInput } from '../../src/model/index.js';
import type { PolicyOptions } from '../../src/policy/index.js';
import { BASE_TIME, DAY, MINUTE } from '../helpers/observations.js';

export const SUBJECTS = ['ann@example.com', 'bob@example.com'] as const;
export const SOURCES = ['hubspot', 'mailchimp', 'cli', 'sendgrid'] as const;
export const GRANT_SOURCES = new Set<string>(['hubspot', 'cli']);
export const PROP_CHANNELS: readonly Channel[] = ['email', 'sms'];
export const PURPOSES = ['*', 'newsletter', 'events'] as const;
export const CONFIGURED_PURPOSES = ['newsletter', 'product_updates'] as const;

/** Null (no time) or a time minutes apart, so grants and denials often fall inside the skew window. */
export const statedAtArb: fc.Arbitrary<string | null> = fc.option(
  fc.integer({ min: 0, max: 40 }).map((m) => new Date(BASE_TIME + m * MINUTE).toISOString()),
  { freq: 6 },
);

const observedAtArb = fc.constantFrom('2025-01-01T00:00:00.000Z', '2025-01-02T00:00:00.000Z', '2025-01-03T00:00:00.000Z');

const base = {
  subject: fc.constantFrom(...SUBJECTS),
  source: fc.constantFrom(...SOURCES),
  recordId: fc.constantFrom('r1', 'r2', null),
  channel: fc.constantFrom(...PROP_CHANNELS),
  purpose: fc.constantFrom(...PURPOSES),
  statedAt: statedAtArb,
  how: fc.constantFrom('pull' as const, 'webhook' as const, 'manual' as const),
  reference: fc.constantFrom('ref-a', null),
  evidence: fc.constantFrom('form #1', null),
};

export const consentInputArb: fc.Arbitrary<ObservationInput> = fc.record({
  ...base,
  kind: fc.constant('consent' as const),
  state: fc.constantFrom('granted' as const, 'denied' as const, 'unknown' as const),
  strength: fc.constantFrom('explicit' as const, 'implicit' as const),
  reason: fc.constant(null),
});

export const suppressionInputArb: fc.Arbitrary<ObservationInput> = fc.record({
  ...base,
  kind: fc.constant('suppression' as const),
  purpose: fc.constant('*'),
  state: fc.constant('denied' as const),
  strength: fc.constant('explicit' as const),
  reason: fc.constantFrom('hard_bounce' as const, 'invalid_address' as const, 'complaint' as const, 'blocked' as const),
});

export const erasureInputArb: fc.Arbitrary<ObservationInput> = fc.record({
  ...base,
  kind: fc.constant('erasure' as const),
  purpose: fc.constant('*'),
  state: fc.constant('denied' as const),
  strength: fc.constant('explicit' as const),
  reason: fc.constant(null),
});

export const inputArb: fc.Arbitrary<ObservationInput> = fc.oneof(
  { arbitrary: consentInputArb, weight: 10 },
  { arbitrary: suppressionInputArb, weight: 2 },
  { arbitrary: erasureInputArb, weight: 1 },
);

export function observationArb(input: fc.Arbitrary<ObservationInput> = inputArb): fc.Arbitrary<Observation> {
  return fc.tuple(input, observedAtArb).map(([i, at]) => toObservation(i, at));
}

export const observationsArb: fc.Arbitrary<Observation[]> = fc.array(observationArb(), { maxLength: 14 });

/** Any denial: a denied consent statement (any strength, any source) or a spam complaint. */
export const denialArb: fc.Arbitrary<Observation> = observationArb(
  fc.oneof(
    consentInputArb.map((i) => ({ ...i, state: 'denied' as const })),
    suppressionInputArb.map((i) => ({ ...i, reason: 'complaint' as const })),
  ),
);

export const optionsArb: fc.Arbitrary<PolicyOptions> = fc.record({
  purposes: fc.constant(CONFIGURED_PURPOSES),
  grantSources: fc.constant(GRANT_SOURCES),
  clockSkewMs: fc.constantFrom(0, 5 * MINUTE),
  reconfirmAfterMs: fc.constantFrom(null, 10 * MINUTE, DAY),
  revokeStale: fc.boolean(),
  now: fc.constant(new Date(BASE_TIME + 30 * MINUTE)),
});
