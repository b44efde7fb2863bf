import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide } from '../../src/policy/index.js';
import { RuleId, toObservation, type Decision } from '../../src/model/index.js';
import { SUBJECT } from '../helpers/observations.js';
import { GRANT_SOURCES, PROP_CHANNELS, PURPOSES, SOURCES, consentInputArb, denialArb, observationArb, observationsArb, optionsArb } from './arbitraries.js';

const NUM_RUNS = 300;

function stateOf(d: Decision, channel: string, purpose: string): string | undefined {
  return d.permissions.find((p) => p.channel === channel && p.purpose === purpose)?.state;
}

describe('policy properties (rule 7)', () => {
  it('(a) any permutation of the input gives a deep-equal decision', () => {
    fc.assert(
      fc.property(
        observationsArb.chain((xs) => fc.tuple(fc.constant(xs), fc.shuffledSubarray(xs, { minLength: xs.length, maxLength: xs.length }))),
        optionsArb,
        ([xs, shuffled], opts) => {
          expect(decide(SUBJECT, shuffled, opts)).toEqual(decide(SUBJECT, xs, opts));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('(b) duplicating observations (even with another observedAt) changes nothing', () => {
    fc.assert(
      fc.property(
        observationsArb.chain((xs) => fc.tuple(fc.constant(xs), fc.subarray(xs), fc.boolean())),
        optionsArb,
        ([xs, dups, first], opts) => {
          const replayed = dups.map((o) => ({ ...o, observedAt: '2030-01-01T00:00:00.000Z' }));
          const withDups = first ? [...replayed, ...xs] : [...xs, ...replayed, ...dups];
          expect(decide(SUBJECT, withDups, opts)).toEqual(decide(SUBJECT, xs, opts));
        },
      ),
      { numRuns: NUM_RUNS },
    );
  });

  it('(c) adding a denial never turns anything into granted', () => {
    fc.assert(
      fc.property(observationsArb, optionsArb, denialArb, (xs, base, denial) => {
        // Every purpose of the universe is configured, so the set of listed scopes cannot grow: a purpose first
        // mentioned by the new denial was already covered by any '*' grant, merely not listed.
        const opts = { ...base, purposes: [...new Set([...base.purposes, ...PURPOSES.filter((p) => p !== '*')])] };
        const before = decide(SUBJECT, xs, opts);
        const after = decide(SUBJECT, [...xs, denial], opts);
        for (const p of after.permissions) {
          if (p.state === 'granted') expect(stateOf(before, p.channel, p.purpose)).toBe('granted');
        }
        // scopes that existed before and were not granted stay not granted
        for (const p of before.permissions) {
          if (p.state !== 'granted') expect(stateOf(after, p.channel, p.purpose)).not.toBe('granted');
        }
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('(d) only implicit or non-grant-source observations never yield granted', () => {
    const weak = observationArb(
      fc.tuple(consentInputArb, fc.boolean(), fc.constantFrom(...SOURCES.filter((s) => !GRANT_SOURCES.has(s)))).map(([i, implicit, src]) =>
        implicit ? { ...i, strength: 'implicit' as const } : { ...i, source: src },
      ),
    );
    fc.assert(
      fc.property(fc.array(weak, { maxLength: 14 }), optionsArb, (xs, opts) => {
        const d = decide(SUBJECT, xs, opts);
        expect(d.permissions.filter((p) => p.state === 'granted')).toEqual([]);
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('(e) every decided permission names an input observation and a known rule', () => {
    fc.assert(
      fc.property(observationsArb, optionsArb, (xs, opts) => {
        const byId = new Map(xs.map((o) => [o.id, o]));
        const d = decide(SUBJECT, xs, opts);
        for (const p of d.permissions) {
          expect(RuleId.options).toContain(p.rule);
          if (p.state !== 'unknown') {
            expect(p.decidedBy).not.toBeNull();
            expect(byId.has(p.decidedBy ?? '')).toBe(true);
          }
          if (p.decidedBy === null) expect(p.rule).toBe('no-evidence');
          else expect(p.statedAt).toBe(byId.get(p.decidedBy)?.statedAt);
          if (p.stale) expect(p.statedAt).not.toBeNull();
        }
        for (const s of d.suppressions) expect(byId.get(s.decidedBy)?.kind).toBe('suppression');
        expect(d.erasureRequested).toBe(xs.some((o) => o.kind === 'erasure'));
      }),
      { numRuns: NUM_RUNS },
    );
  });

  it('(f) a denial of * with no time denies every purpose of that channel', () => {
    fc.assert(
      fc.property(observationsArb, fc.constantFrom(...PROP_CHANNELS), fc.constantFrom(...SOURCES), optionsArb, (xs, channel, source, opts) => {
        const blanket = toObservation(
          {
            subject: SUBJECT,
            source,
            recordId: null,
            kind: 'consent',
            channel,
            purpose: '*',
            state: 'denied',
            strength: 'implicit',
            statedAt: null,
            how: 'pull',
            reference: null,
            evidence: null,
            reason: null,
          },
          '2025-01-01T00:00:00.000Z',
        );
        const d = decide(SUBJECT, [...xs, blanket], opts);
        const ofChannel = d.permissions.filter((p) => p.channel === channel);
        expect(ofChannel.length).toBeGreaterThanOrEqual(1 + opts.purposes.length);
        for (const p of ofChannel) expect(p.state).toBe('denied');
      }),
      { numRuns: NUM_RUNS },
    );
  });
});
