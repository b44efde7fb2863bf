import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RuleId, type Decision, type Permission } from '../../src/model/index.js';
import { decide } from '../../src/policy/index.js';
import { decodeDecision, encodeDecision } from '../../src/store/sqlite/decisions.js';
import { SUBJECT } from '../helpers/observations.js';
import { PROP_CHANNELS, PURPOSES, observationsArb, optionsArb } from '../property/arbitraries.js';

/** The format-2 row of a decision (one entry per permission), as stores before format 3 wrote it. */
function formatTwo(d: Decision): string {
  return JSON.stringify([
    2,
    d.permissions.map((p) => [p.channel, p.purpose, p.state, p.rule, p.decidedBy, p.statedAt, p.stale ? 1 : 0]),
    d.suppressions.map((s) => [s.channel, s.reason, s.decidedBy, s.statedAt]),
    d.erasureRequested ? 1 : 0,
  ]);
}

const permissionArb: fc.Arbitrary<Permission> = fc.record({
  channel: fc.constantFrom(...PROP_CHANNELS),
  purpose: fc.constantFrom(...PURPOSES, 'product_updates'),
  state: fc.constantFrom('granted' as const, 'denied' as const, 'unknown' as const),
  rule: fc.constantFrom(...RuleId.options),
  decidedBy: fc.option(fc.constantFrom('obs-a', 'obs-b'), { nil: null }),
  statedAt: fc.option(fc.constantFrom('2025-01-01T00:00:00.000Z', '2025-02-01T00:00:00.000Z'), { nil: null }),
  stale: fc.boolean(),
});

/** Arbitrary permission lists: neighbours that agree on everything but the purpose, and ones that differ in one field. */
const decisionArb: fc.Arbitrary<Decision> = fc.record({
  subject: fc.constant(SUBJECT),
  permissions: fc.array(permissionArb, { maxLength: 12 }),
  suppressions: fc.array(
    fc.record({
      channel: fc.constantFrom(...PROP_CHANNELS),
      reason: fc.constantFrom('hard_bounce' as const, 'complaint' as const, 'blocked' as const),
      decidedBy: fc.constant('obs-c'),
      statedAt: fc.option(fc.constant('2025-03-01T00:00:00.000Z'), { nil: null }),
    }),
    { maxLength: 2 },
  ),
  erasureRequested: fc.boolean(),
});

describe('stored decisions (format 3)', () => {
  it('a decision decided by the policy reads back deep-equal, in order, and never larger than format 2', () => {
    fc.assert(
      fc.property(observationsArb, optionsArb, (observations, opts) => {
        const d = decide(SUBJECT, observations, opts);
        const stored = encodeDecision(d);
        expect(decodeDecision(SUBJECT, stored)).toEqual(d);
        expect(stored.length).toBeLessThanOrEqual(formatTwo(d).length);
      }),
      { numRuns: 300 },
    );
  });

  it('any permission list reads back exactly: only neighbours equal in all but the purpose share an entry', () => {
    fc.assert(
      fc.property(decisionArb, (d) => {
        expect(decodeDecision(SUBJECT, encodeDecision(d))).toEqual(d);
      }),
      { numRuns: 500 },
    );
  });

  it('one observation deciding every purpose of a channel is stored once', () => {
    const perm = (purpose: string): Permission => ({ channel: 'email', purpose, state: 'unknown', rule: 'R2-absence-not-consent', decidedBy: 'ZcFgn-4r3HUB355aoc7BbDRNpiLMbzTE', statedAt: null, stale: false });
    const d: Decision = { subject: SUBJECT, permissions: ['*', 'events', 'newsletter', 'product_updates'].map(perm), suppressions: [], erasureRequested: false };
    const stored = encodeDecision(d);
    expect(stored.match(/R2-absence-not-consent/g)).toHaveLength(1);
    expect(stored.length).toBeLessThan(formatTwo(d).length / 2.5);
  });

  it('rows of format 2 and JSON objects (earlier stores) read back as the decision they were written from', () => {
    fc.assert(
      fc.property(decisionArb, (d) => {
        expect(decodeDecision(SUBJECT, formatTwo(d))).toEqual(d);
        expect(decodeDecision(SUBJECT, JSON.stringify(d))).toEqual(d);
      }),
      { numRuns: 200 },
    );
  });
});
