import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decide, ECHO_TEXT, explainDecision, RULE_TEXT } from '../../src/policy/index.js';
import { RuleId, type Decision, type Observation, type Permission } from '../../src/model/index.js';
import { observationArb, observationsArb, optionsArb } from '../property/arbitraries.js';
import {
  DAY,
  MINUTE,
  SUBJECT,
  complaint,
  day,
  deny,
  erasure,
  grant,
  obs,
  policyOptions,
  suppression,
  unknownState,
} from '../helpers/observations.js';

function perm(d: Decision, purpose: string, channel: Permission['channel'] = 'email'): Permission {
  const p = d.permissions.find((x) => x.channel === channel && x.purpose === purpose);
  if (p === undefined) throw new Error(`no permission for ${channel}:${purpose}`);
  return p;
}

describe('decide: scopes and shape', () => {
  it('no observations: no permissions, no suppressions, no erasure', () => {
    expect(decide(SUBJECT, [], policyOptions())).toEqual({ subject: SUBJECT, permissions: [], suppressions: [], erasureRequested: false });
  });

  it('produces * plus every configured purpose plus observed purposes, sorted (channel, *, purpose)', () => {
    const d = decide(SUBJECT, [grant(day(1), { channel: 'sms', purpose: 'alerts' }), deny(day(1), { purpose: 'events' })], policyOptions());
    expect(d.permissions.map((p) => `${p.channel}:${p.purpose}`)).toEqual([
      'email:*',
      'email:events',
      'email:newsletter',
      'email:product_updates',
      'sms:*',
      'sms:alerts',
      'sms:newsletter',
      'sms:product_updates',
    ]);
    expect(perm(d, 'events').state).toBe('denied');
    expect(perm(d, '*').rule).toBe('no-evidence');
    expect(perm(d, '*').decidedBy).toBeNull();
    expect(perm(d, 'alerts', 'sms').state).toBe('granted');
  });
});

describe('rule 1: denial is sticky', () => {
  it('a denial alone denies', () => {
    const d0 = deny(day(1));
    const p = perm(decide(SUBJECT, [d0], policyOptions()), '*');
    expect(p).toEqual({ channel: 'email', purpose: '*', state: 'denied', rule: 'R1-denial-sticky', decidedBy: d0.id, statedAt: day(1), stale: false });
  });

  it('a HubSpot unsubscribe followed by an implicit Mailchimp subscribe stays denied', () => {
    const unsub = deny(day(1), { source: 'hubspot' });
    const sub = obs({ source: 'mailchimp', state: 'granted', strength: 'implicit', statedAt: day(2) });
    const p = perm(decide(SUBJECT, [unsub, sub], policyOptions({ grantSources: new Set(['hubspot', 'mailchimp', 'cli']) })), '*');
    expect(p.state).toBe('denied');
    expect(p.rule).toBe('R1-denial-sticky');
    expect(p.decidedBy).toBe(unsub.id);
  });

  it('explicit grant via cli 1 day after denial grants', () => {
    const d0 = deny(day(1));
    const g = grant(day(2), { source: 'cli', how: 'manual' });
    const p = perm(decide(SUBJECT, [d0, g], policyOptions()), '*');
    expect(p).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant', decidedBy: g.id, statedAt: day(2) });
  });

  it('an explicit grant earlier than the denial (beyond skew) stays denied', () => {
    const g = grant(day(1));
    const d0 = deny(day(2));
    expect(perm(decide(SUBJECT, [g, d0], policyOptions()), '*')).toMatchObject({ state: 'denied', rule: 'R1-denial-sticky', decidedBy: d0.id });
  });

  it('the latest denial is compared, not the first', () => {
    const g = grant(day(2));
    const late = deny(day(3));
    const p = perm(decide(SUBJECT, [deny(day(1)), g, late], policyOptions()), '*');
    expect(p).toMatchObject({ state: 'denied', decidedBy: late.id });
  });

  it('a grant alone grants', () => {
    const g = grant(day(1));
    expect(perm(decide(SUBJECT, [g], policyOptions()), '*')).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant', decidedBy: g.id });
  });
});

describe('rule 2: absence is not consent', () => {
  it('grant from a source not allowed to grant is unknown', () => {
    const g = grant(day(1), { source: 'mailchimp' });
    const p = perm(decide(SUBJECT, [g], policyOptions()), '*');
    expect(p).toMatchObject({ state: 'unknown', rule: 'R2-absence-not-consent', decidedBy: g.id });
  });

  it('an implicit grant (default subscription status) is unknown', () => {
    const g = obs({ state: 'granted', strength: 'implicit', statedAt: day(1), how: 'import' });
    expect(perm(decide(SUBJECT, [g], policyOptions()), '*')).toMatchObject({ state: 'unknown', rule: 'R2-absence-not-consent' });
  });

  it('an unknown state (false opt-out flag) is unknown, and a newsletter purpose with no evidence is no-evidence', () => {
    const u = unknownState(day(1), { purpose: 'product_updates' });
    const d = decide(SUBJECT, [u], policyOptions());
    expect(perm(d, 'product_updates')).toMatchObject({ state: 'unknown', rule: 'R2-absence-not-consent', decidedBy: u.id });
    expect(perm(d, 'newsletter')).toMatchObject({ state: 'unknown', rule: 'no-evidence', decidedBy: null, statedAt: null });
  });

  it('an implicit grant never overturns a denial, even much later', () => {
    const d0 = deny(day(1), { strength: 'implicit' });
    const g = obs({ state: 'granted', strength: 'implicit', statedAt: day(100) });
    expect(perm(decide(SUBJECT, [d0, g], policyOptions()), '*')).toMatchObject({ state: 'denied', decidedBy: d0.id });
  });
});

describe('rule 3: doubt favours denial', () => {
  it('grant 2 minutes after denial with 5 min skew is denied (rule 3)', () => {
    const d0 = deny(day(1));
    const g = grant(new Date(Date.parse(day(1)) + 2 * MINUTE).toISOString());
    expect(perm(decide(SUBJECT, [d0, g], policyOptions({ clockSkewMs: 5 * MINUTE })), '*')).toMatchObject({
      state: 'denied',
      rule: 'R3-doubt-favours-denial',
      decidedBy: d0.id,
    });
  });

  it('grant 2 minutes before denial is denied by rule 3 too, and 6 minutes after grants', () => {
    const d0 = deny(day(1));
    const before = grant(new Date(Date.parse(day(1)) - 2 * MINUTE).toISOString());
    expect(perm(decide(SUBJECT, [d0, before], policyOptions()), '*').rule).toBe('R3-doubt-favours-denial');
    const after = grant(new Date(Date.parse(day(1)) + 6 * MINUTE).toISOString());
    expect(perm(decide(SUBJECT, [d0, after], policyOptions()), '*')).toMatchObject({ state: 'granted', decidedBy: after.id });
  });

  it('exactly at the skew boundary is still doubt', () => {
    const d0 = deny(day(1));
    const g = grant(new Date(Date.parse(day(1)) + 5 * MINUTE).toISOString());
    expect(perm(decide(SUBJECT, [d0, g], policyOptions()), '*').rule).toBe('R3-doubt-favours-denial');
  });

  it('denial with no time beats a timed grant', () => {
    const d0 = deny(null);
    const g = grant(day(300));
    expect(perm(decide(SUBJECT, [d0, g], policyOptions()), '*')).toMatchObject({ state: 'denied', rule: 'R3-doubt-favours-denial', decidedBy: d0.id });
  });

  it('a grant with no time never beats a timed denial', () => {
    const d0 = deny(day(1));
    const g = grant(null, { source: 'cli' });
    expect(perm(decide(SUBJECT, [d0, g], policyOptions()), '*')).toMatchObject({ state: 'denied', rule: 'R3-doubt-favours-denial' });
  });

  it('a grant with no time and no denial grants (and is never stale)', () => {
    const g = grant(null);
    const p = perm(decide(SUBJECT, [g], policyOptions({ reconfirmAfterMs: DAY, revokeStale: true })), '*');
    expect(p).toMatchObject({ state: 'granted', stale: false, statedAt: null });
  });
});

describe('rule 4: scope', () => {
  it('grant of newsletter after denial of * grants newsletter only; product_updates stays denied', () => {
    const all = deny(day(1));
    const nl = grant(day(2), { purpose: 'newsletter' });
    const d = decide(SUBJECT, [all, nl], policyOptions());
    expect(perm(d, 'newsletter')).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant', decidedBy: nl.id });
    expect(perm(d, 'product_updates')).toMatchObject({ state: 'denied', rule: 'R4-scope-all-purposes', decidedBy: all.id });
    expect(perm(d, '*')).toMatchObject({ state: 'denied', rule: 'R1-denial-sticky', decidedBy: all.id });
  });

  it('a later grant of * grants every purpose, but not one whose own denial is later', () => {
    const nlDeny = deny(day(3), { purpose: 'newsletter' });
    const all = grant(day(2));
    const d = decide(SUBJECT, [deny(day(1)), all, nlDeny], policyOptions());
    expect(perm(d, '*')).toMatchObject({ state: 'granted', decidedBy: all.id });
    expect(perm(d, 'product_updates')).toMatchObject({ state: 'granted', decidedBy: all.id });
    expect(perm(d, 'newsletter')).toMatchObject({ state: 'denied', rule: 'R1-denial-sticky', decidedBy: nlDeny.id });
  });

  it('a purpose denial does not deny *', () => {
    const d = decide(SUBJECT, [deny(day(1), { purpose: 'newsletter' })], policyOptions());
    expect(perm(d, '*').state).toBe('unknown');
  });

  it('channels are independent', () => {
    const d = decide(SUBJECT, [deny(day(1)), grant(day(0), { channel: 'sms' })], policyOptions());
    expect(perm(d, '*', 'sms').state).toBe('granted');
    expect(perm(d, '*', 'email').state).toBe('denied');
  });
});

describe('rule 5: suppressions', () => {
  it('complaint suppression denies email:*', () => {
    const g = grant(day(1), { source: 'cli' });
    const c = complaint(day(2), { source: 'sendgrid' });
    const d = decide(SUBJECT, [g, c], policyOptions());
    expect(perm(d, '*')).toMatchObject({ state: 'denied', rule: 'R5-complaint-is-denial', decidedBy: c.id });
    expect(perm(d, 'newsletter')).toMatchObject({ state: 'denied', rule: 'R5-complaint-is-denial' });
    expect(d.suppressions).toEqual([{ channel: 'email', reason: 'complaint', decidedBy: c.id, statedAt: day(2) }]);
  });

  it('a hard bounce suppresses but is not a denial', () => {
    const b = suppression('hard_bounce', day(2), { source: 'mailchimp' });
    const d = decide(SUBJECT, [b], policyOptions());
    expect(d.suppressions).toEqual([{ channel: 'email', reason: 'hard_bounce', decidedBy: b.id, statedAt: day(2) }]);
    expect(perm(d, '*')).toMatchObject({ state: 'unknown', rule: 'no-evidence' });
  });

  it('the earliest suppression decides (sticky); one without time sorts last', () => {
    const noTime = suppression('blocked', null);
    const late = suppression('invalid_address', day(5));
    const early = suppression('hard_bounce', day(1), { source: 'sendgrid' });
    const d = decide(SUBJECT, [noTime, late, early], policyOptions());
    expect(d.suppressions).toEqual([{ channel: 'email', reason: 'hard_bounce', decidedBy: early.id, statedAt: day(1) }]);
    expect(decide(SUBJECT, [noTime], policyOptions()).suppressions[0]?.decidedBy).toBe(noTime.id);
  });

  it('a grant well after a complaint grants again (the suppression itself stays)', () => {
    const c = complaint(day(1));
    const g = grant(day(10), { source: 'cli' });
    const d = decide(SUBJECT, [c, g], policyOptions());
    expect(perm(d, '*')).toMatchObject({ state: 'granted', decidedBy: g.id });
    expect(d.suppressions).toHaveLength(1);
  });
});

describe('rule 6: erasure flag', () => {
  it('erasureRequested iff an erasure observation exists', () => {
    expect(decide(SUBJECT, [grant(day(1))], policyOptions()).erasureRequested).toBe(false);
    const d = decide(SUBJECT, [grant(day(1)), erasure(day(2))], policyOptions());
    expect(d.erasureRequested).toBe(true);
  });

  it('an erasure alone creates no permissions', () => {
    expect(decide(SUBJECT, [erasure(null)], policyOptions()).permissions).toEqual([]);
  });
});

describe('rule 7: determinism', () => {
  it('replaying an observation (same id, later observedAt) changes nothing', () => {
    const d0 = deny(day(1));
    const replay = { ...d0, observedAt: '2026-01-01T00:00:00.000Z' };
    const g = grant(day(2), { source: 'cli' });
    expect(decide(SUBJECT, [d0, g, replay, g], policyOptions())).toEqual(decide(SUBJECT, [d0, g], policyOptions()));
  });

  it('ties at equal statedAt break by id, whatever the input order', () => {
    const a = deny(day(1), { source: 'hubspot' });
    const b = deny(day(1), { source: 'salesforce' });
    const expected = [a.id, b.id].sort()[1];
    expect(perm(decide(SUBJECT, [a, b], policyOptions()), '*').decidedBy).toBe(expected);
    expect(perm(decide(SUBJECT, [b, a], policyOptions()), '*').decidedBy).toBe(expected);
  });

  it('a grant and a denial at the same instant resolve to denial', () => {
    const d0 = deny(day(1));
    const g = grant(day(1));
    expect(perm(decide(SUBJECT, [g, d0], policyOptions({ clockSkewMs: 0 })), '*')).toMatchObject({ state: 'denied', rule: 'R3-doubt-favours-denial' });
  });

  it('two denials with no time: tie broken by id', () => {
    const a = deny(null, { source: 'hubspot' });
    const b = deny(null, { source: 'salesforce' });
    const expected = [a.id, b.id].sort()[1];
    expect(perm(decide(SUBJECT, [b, a], policyOptions()), '*').decidedBy).toBe(expected);
    expect(perm(decide(SUBJECT, [a, b], policyOptions()), '*').decidedBy).toBe(expected);
  });
});

describe('rule 9: reconfirmation', () => {
  const opts = { reconfirmAfterMs: 365 * DAY, now: new Date(Date.parse(day(400))) };

  it('stale grant reported; revoked when configured', () => {
    const g = grant(day(1));
    const reported = perm(decide(SUBJECT, [g], policyOptions({ ...opts, revokeStale: false })), '*');
    expect(reported).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant', stale: true, decidedBy: g.id });
    const revoked = perm(decide(SUBJECT, [g], policyOptions({ ...opts, revokeStale: true })), '*');
    expect(revoked).toMatchObject({ state: 'denied', rule: 'R9-stale-grant-revoked', stale: true, decidedBy: g.id, statedAt: day(1) });
  });

  it('a recent grant is not stale; reconfirmAfter null never is', () => {
    expect(perm(decide(SUBJECT, [grant(day(100))], policyOptions({ ...opts, revokeStale: true })), '*')).toMatchObject({ state: 'granted', stale: false });
    expect(perm(decide(SUBJECT, [grant(day(1))], policyOptions({ reconfirmAfterMs: null, revokeStale: true })), '*').stale).toBe(false);
  });

  it('denials are never marked stale', () => {
    expect(perm(decide(SUBJECT, [deny(day(1))], policyOptions({ ...opts, revokeStale: true })), '*')).toMatchObject({ state: 'denied', stale: false });
  });
});

describe('explainDecision', () => {
  it('names the deciding observation, the rule text and the relevant history in time order', () => {
    const all = deny(day(1));
    const nl = grant(day(2), { purpose: 'newsletter' });
    const c = suppression('hard_bounce', day(3));
    const other = grant(day(0), { channel: 'sms' });
    const observations = [nl, other, c, all, all];
    const d = decide(SUBJECT, observations, policyOptions());
    const ex = explainDecision(d, observations);
    expect(JSON.parse(JSON.stringify(ex))).toEqual(ex);
    const nlEx = ex.permissions.find((p) => p.channel === 'email' && p.purpose === 'newsletter');
    expect(nlEx).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant', decidedBy: nl, text: RULE_TEXT['R1-later-explicit-grant'] });
    expect(nlEx?.relevant).toEqual([all, nl]);
    const starEx = ex.permissions.find((p) => p.channel === 'email' && p.purpose === '*');
    expect(starEx?.relevant).toEqual([all]);
    expect(starEx?.text).toMatch(/rule 1/);
    expect(ex.suppressions).toEqual([expect.objectContaining({ channel: 'email', reason: 'hard_bounce', decidedBy: c, relevant: [c] })]);
    expect(ex.erasureRequested).toBe(false);
    expect(ex.erasure).toEqual([]);
  });

  it('includes complaints among the relevant observations and erasure requests', () => {
    const c = complaint(day(1));
    const e = erasure(day(2));
    const ex = explainDecision(decide(SUBJECT, [c, e], policyOptions()), [e, c]);
    expect(ex.permissions[0]).toMatchObject({ rule: 'R5-complaint-is-denial', decidedBy: c, relevant: [c] });
    expect(ex.erasure).toEqual([e]);
    expect(ex.erasureRequested).toBe(true);
  });

  it('has a sentence for every rule', () => {
    for (const r of RuleId.options) expect(RULE_TEXT[r].length).toBeGreaterThan(20);
  });
});

describe('rule 10: echoes decide nothing', () => {
  const echo = (o: Observation): Observation => ({ ...o, echo: true });

  it('an echo never decides: not a later grant, not a later denial, not a first statement', () => {
    const d0 = deny(day(1));
    expect(perm(decide(SUBJECT, [d0, echo(grant(day(10)))], policyOptions()), '*')).toMatchObject({ state: 'denied', decidedBy: d0.id });
    const g = grant(day(1));
    expect(perm(decide(SUBJECT, [g, echo(deny(day(10)))], policyOptions()), '*')).toMatchObject({ state: 'granted', decidedBy: g.id });
    // within the clock-skew window of a real statement: still no doubt (rule 3 is not triggered)
    expect(perm(decide(SUBJECT, [g, echo(deny(day(1)))], policyOptions()), '*')).toMatchObject({ state: 'granted', decidedBy: g.id });
    // echoes alone: as if nothing was said (no scope listed at all)
    expect(decide(SUBJECT, [echo(deny(day(1))), echo(grant(day(2), { channel: 'sms' }))], policyOptions())).toEqual(decide(SUBJECT, [], policyOptions()));
  });

  it('ugo.bianchi: our pushes of "* denied" and "product_updates granted" echoing back at the same time do not flip product_updates', () => {
    const opts = policyOptions({ grantSources: new Set(['crm_export', 'newsletter_tool', 'cli', 'api']), purposes: ['newsletter', 'product_updates', 'events'] });
    const pushedAt = '2026-11-24T04:20:33.274Z';
    const real = [
      deny('2020-01-15T00:00:00.000Z', { source: 'legacy_suppressions', recordId: SUBJECT, how: 'import', evidence: 'letter' }),
      grant('2023-09-21T00:00:00.000Z', { source: 'crm_export', recordId: SUBJECT, purpose: 'newsletter', how: 'import', evidence: 'web form /signup' }),
      grant('2024-04-16T13:30:00.000Z', { source: 'newsletter_tool', recordId: SUBJECT, purpose: 'product_updates', how: 'import', evidence: 'double opt-in confirmed' }),
    ];
    const echoes = [
      deny(pushedAt, { source: 'crm_export', recordId: SUBJECT, how: 'import', evidence: 'consentd:R1-denial-sticky' }),
      grant(pushedAt, { source: 'crm_export', recordId: SUBJECT, purpose: 'product_updates', how: 'import', evidence: 'consentd:R1-later-explicit-grant' }),
      deny(pushedAt, { source: 'newsletter_tool', recordId: SUBJECT, how: 'import', evidence: 'consentd:R1-denial-sticky' }),
      grant(pushedAt, { source: 'newsletter_tool', recordId: SUBJECT, purpose: 'newsletter', how: 'import', evidence: 'consentd:R1-later-explicit-grant' }),
    ];
    const before = decide(SUBJECT, real, opts);
    expect(perm(before, 'product_updates')).toMatchObject({ state: 'granted', rule: 'R1-later-explicit-grant' });
    // Unflagged (the bug): a grant and a denial at the same instant, rule 3 denies product_updates.
    expect(perm(decide(SUBJECT, [...real, ...echoes], opts), 'product_updates')).toMatchObject({ state: 'denied', rule: 'R3-doubt-favours-denial' });
    // Flagged as the store flags them: nothing changes.
    const after = decide(SUBJECT, [...real, ...echoes.map(echo)], opts);
    expect(after).toEqual(before);
    expect(perm(after, 'product_updates')).toMatchObject({ state: 'granted', decidedBy: real[2]?.id });
    expect(perm(after, 'newsletter')).toMatchObject({ state: 'granted', decidedBy: real[1]?.id });
    expect(perm(after, '*')).toMatchObject({ state: 'denied', decidedBy: real[0]?.id });
  });

  it('explain lists echoes in the history, never as the winner', () => {
    const g = grant(day(1));
    const e = echo(deny(day(1), { source: 'salesforce' }));
    const ex = explainDecision(decide(SUBJECT, [g, e], policyOptions()), [g, e]);
    const star = ex.permissions.find((p) => p.purpose === '*');
    expect(star).toMatchObject({ state: 'granted', decidedBy: g });
    expect(star?.relevant).toContainEqual(e);
    expect(star?.relevant.find((o) => o.id === e.id)?.echo).toBe(true);
    // an echo sharing the id of the winner cannot be reported as it
    const gEcho = echo({ ...g, observedAt: '2000-01-01T00:00:00.000Z' });
    expect(explainDecision(decide(SUBJECT, [gEcho], policyOptions()), [gEcho]).permissions).toEqual([]);
    expect(ECHO_TEXT).toMatch(/echo/);
  });

  it('property: adding echoes (any state, any scope, any time) never changes the decision', () => {
    fc.assert(
      fc.property(observationsArb, fc.array(observationArb(), { maxLength: 8 }), optionsArb, (xs, extra, opts) => {
        const ids = new Set(xs.map((o) => o.id));
        // The store keeps one row per id: an echo never shares the id of a stored observation.
        const echoes = extra.filter((o) => !ids.has(o.id)).map(echo);
        expect(decide(SUBJECT, [...xs, ...echoes], opts)).toEqual(decide(SUBJECT, xs, opts));
        expect(decide(SUBJECT, [...echoes, ...xs].reverse(), opts)).toEqual(decide(SUBJECT, xs, opts));
      }),
      { numRuns: 300 },
    );
  });

  it('property: an echo repeating the state of a stored observation (same record and scope, our later push) never turns a denial into a grant', () => {
    fc.assert(
      fc.property(observationsArb, optionsArb, fc.integer({ min: 0, max: 1000 }), (xs, opts, minutes) => {
        const before = decide(SUBJECT, xs, opts);
        const echoes = xs
          .filter((o) => o.kind === 'consent')
          .map((o) => echo(obs({ ...o, statedAt: new Date(Date.parse(o.statedAt ?? day(0)) + minutes * MINUTE).toISOString(), evidence: 'consentd:push' })));
        const after = decide(SUBJECT, [...xs, ...echoes.filter((e) => !xs.some((o) => o.id === e.id))], opts);
        for (const p of before.permissions) if (p.state !== 'granted') expect(after.permissions.find((q) => q.channel === p.channel && q.purpose === p.purpose)?.state).toBe(p.state);
        expect(after).toEqual(before);
      }),
      { numRuns: 300 },
    );
  });
});
