/**
 * Shared builders for observations, decisions and record snapshots in tests.
 * Times are given as ISO strings or as day offsets from BASE_TIME with `day(n)`.
 */
import { toObservation, type Observation, type ObservationInput, type RecordSnapshot } from '../../src/model/index.js';
import type { ConnectorCapabilities } from '../../src/connectors/contract.js';
import type { PolicyOptions } from '../../src/policy/index.js';

export const SUBJECT = 'ann@example.com';
export const BASE_TIME = Date.parse('2024-01-01T00:00:00.000Z');
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** ISO time `ms` after BASE_TIME. */
export function at(ms: number): string {
  return new Date(BASE_TIME + ms).toISOString();
}

/** ISO time `n` days after BASE_TIME (fractions allowed). */
export function day(n: number): string {
  return at(n * DAY);
}

const OBSERVED_AT = '2025-01-01T00:00:00.000Z';

/** Any observation, defaults: an explicit (email, *) grant from hubspot via pull, no time. */
export function obs(over: Partial<ObservationInput> = {}, observedAt: string = OBSERVED_AT): Observation {
  const input: ObservationInput = {
    subject: SUBJECT,
    source: 'hubspot',
    recordId: 'rec-1',
    kind: 'consent',
    channel: 'email',
    purpose: '*',
    state: 'granted',
    strength: 'explicit',
    statedAt: null,
    how: 'pull',
    reference: null,
    evidence: null,
    reason: null,
    ...over,
  };
  return toObservation(input, observedAt);
}

export function grant(statedAt: string | null, over: Partial<ObservationInput> = {}): Observation {
  return obs({ state: 'granted', strength: 'explicit', statedAt, ...over });
}

export function deny(statedAt: string | null, over: Partial<ObservationInput> = {}): Observation {
  return obs({ state: 'denied', strength: 'explicit', statedAt, ...over });
}

export function unknownState(statedAt: string | null, over: Partial<ObservationInput> = {}): Observation {
  return obs({ state: 'unknown', strength: 'implicit', statedAt, ...over });
}

export function suppression(reason: NonNullable<ObservationInput['reason']>, statedAt: string | null, over: Partial<ObservationInput> = {}): Observation {
  return obs({
    kind: 'suppression',
    state: 'denied',
    strength: 'explicit',
    reason,
    how: reason === 'complaint' ? 'complaint' : 'bounce',
    statedAt,
    ...over,
  });
}

export function complaint(statedAt: string | null, over: Partial<ObservationInput> = {}): Observation {
  return suppression('complaint', statedAt, over);
}

export function erasure(statedAt: string | null, over: Partial<ObservationInput> = {}): Observation {
  return obs({ kind: 'erasure', state: 'denied', source: 'cli', how: 'manual', statedAt, ...over });
}

/** Policy options with the defaults most tests want: 5 min skew, no reconfirmation. */
export function policyOptions(over: Partial<PolicyOptions> = {}): PolicyOptions {
  return {
    purposes: ['newsletter', 'product_updates'],
    grantSources: new Set(['hubspot', 'salesforce', 'cli', 'api']),
    clockSkewMs: 5 * MINUTE,
    reconfirmAfterMs: null,
    revokeStale: false,
    now: new Date(BASE_TIME + 400 * DAY),
    ...over,
  };
}

export function snapshot(over: Partial<RecordSnapshot> = {}): RecordSnapshot {
  return {
    connectorId: 'hubspot',
    recordId: 'rec-1',
    subject: SUBJECT,
    consent: {},
    suppressed: {},
    meta: {},
    ...over,
  };
}

export function capabilities(over: Partial<ConnectorCapabilities> = {}): ConnectorCapabilities {
  return {
    consent: [
      { channel: 'email', purpose: '*' },
      { channel: 'email', purpose: 'newsletter' },
    ],
    suppression: ['email'],
    pushGrants: true,
    erase: false,
    acceptsUnknownAddresses: false,
    ...over,
  };
}
