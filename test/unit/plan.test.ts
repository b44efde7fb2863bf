import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyChangeToSnapshot, planSubject, type PlanTarget } from '../../src/plan/index.js';
import { decide } from '../../src/policy/index.js';
import { Change, type Decision, type RecordSnapshot, type ConsentState } from '../../src/model/index.js';
import { SUBJECT, capabilities, complaint, day, deny, erasure, grant, policyOptions, snapshot, suppression } from '../helpers/observations.js';
import { observationsArb, optionsArb } from '../property/arbitraries.js';

const hubspot: PlanTarget = { connectorId: 'hubspot', capabilities: capabilities() };

function decision(...obs: Parameters<typeof decide>[1]): Decision {
  return decide(SUBJECT, obs, policyOptions());
}

const denyAll = deny(day(1));
const grantAll = grant(day(1), { source: 'cli' });

describe('planSubject: consent', () => {
  it('denied vs granted record -> set_consent denied, carrying rule, decidedBy and meta', () => {
    const rec = snapshot({ consent: { 'email:*': 'granted', 'email:newsletter': 'granted' }, meta: { objectType: 'contact' } });
    const changes = planSubject(decision(denyAll), [rec], [hubspot]);
    expect(changes).toHaveLength(2);
    for (const c of changes) expect(Change.parse(c)).toEqual(c);
    expect(changes[0]).toMatchObject({
      connectorId: 'hubspot',
      recordId: 'rec-1',
      subject: SUBJECT,
      op: 'set_consent',
      channel: 'email',
      purpose: '*',
      target: 'denied',
      rule: 'R1-denial-sticky',
      decidedBy: denyAll.id,
      meta: { objectType: 'contact' },
    });
    expect(changes[1]).toMatchObject({ purpose: 'newsletter', target: 'denied', rule: 'R4-scope-all-purposes' });
  });

  it('denied vs unknown (missing) record state -> set_consent denied', () => {
    const changes = planSubject(decision(denyAll), [snapshot()], [hubspot]);
    expect(changes.map((c) => [c.purpose, c.target])).toEqual([
      ['*', 'denied'],
      ['newsletter', 'denied'],
    ]);
  });

  it('granted vs unknown record -> set_consent granted when the platform takes grants', () => {
    const changes = planSubject(decision(grantAll), [snapshot({ consent: { 'email:*': 'unknown', 'email:newsletter': 'denied' } })], [hubspot]);
    expect(changes.map((c) => [c.op, c.purpose, c.target, c.rule])).toEqual([
      ['set_consent', '*', 'granted', 'R1-later-explicit-grant'],
      ['set_consent', 'newsletter', 'granted', 'R1-later-explicit-grant'],
    ]);
  });

  it('pushGrants false -> no grant change, denials still pushed', () => {
    const t: PlanTarget = { connectorId: 'hubspot', capabilities: capabilities({ pushGrants: false }) };
    expect(planSubject(decision(grantAll), [snapshot()], [t])).toEqual([]);
    const nlDeny = deny(day(2), { purpose: 'newsletter' });
    const changes = planSubject(decision(grantAll, nlDeny), [snapshot()], [t]);
    expect(changes.map((c) => [c.purpose, c.target])).toEqual([['newsletter', 'denied']]);
  });

  it('an already-agreeing record -> no change', () => {
    const rec = snapshot({ consent: { 'email:*': 'denied', 'email:newsletter': 'denied' } });
    expect(planSubject(decision(denyAll), [rec], [hubspot])).toEqual([]);
  });

  it('unknown permission never moves a record, in either direction', () => {
    const mailchimpGrant = grant(day(1), { source: 'mailchimp' }); // not allowed to grant -> unknown
    const rec = snapshot({ consent: { 'email:*': 'granted', 'email:newsletter': 'denied' } });
    expect(planSubject(decision(mailchimpGrant), [rec], [hubspot])).toEqual([]);
    expect(planSubject(decision(), [rec], [hubspot])).toEqual([]);
  });

  it('duplicates in one system are all corrected', () => {
    const a = snapshot({ recordId: 'rec-b', consent: { 'email:*': 'granted' } });
    const b = snapshot({ recordId: 'rec-a', consent: { 'email:*': 'granted' } });
    const t: PlanTarget = { connectorId: 'hubspot', capabilities: capabilities({ consent: [{ channel: 'email', purpose: '*' }] }) };
    const changes = planSubject(decision(denyAll), [a, b], [t]);
    expect(changes.map((c) => c.recordId)).toEqual(['rec-a', 'rec-b']);
    expect(new Set(changes.map((c) => c.key)).size).toBe(2);
  });

  it('records of connectors not in targets (or of another subject) are ignored', () => {
    const other = snapshot({ connectorId: 'salesforce', consent: { 'email:*': 'granted' } });
    const stranger = snapshot({ subject: 'bob@example.com', recordId: 'rec-9', consent: { 'email:*': 'granted' } });
    expect(planSubject(decision(denyAll), [other, stranger], [hubspot])).toEqual([]);
  });

  it('output is ordered by connector, record, op, channel, purpose', () => {
    const targets: PlanTarget[] = [
      { connectorId: 'zeta', capabilities: capabilities({ consent: [{ channel: 'sms', purpose: '*' }, { channel: 'email', purpose: 'newsletter' }, { channel: 'email', purpose: '*' }] }) },
      { connectorId: 'alpha', capabilities: capabilities() },
    ];
    const recs = [snapshot({ connectorId: 'zeta', recordId: 'z1' }), snapshot({ connectorId: 'alpha', recordId: 'a2' }), snapshot({ connectorId: 'alpha', recordId: 'a1' })];
    const d = decision(denyAll, deny(day(1), { channel: 'sms' }), complaint(day(1)));
    const changes = planSubject(d, recs, targets);
    expect(changes.map((c) => `${c.connectorId}/${c.recordId}/${c.op}/${c.channel}/${c.purpose}`)).toEqual([
      'alpha/a1/set_consent/email/*',
      'alpha/a1/set_consent/email/newsletter',
      'alpha/a1/suppress/email/*',
      'alpha/a2/set_consent/email/*',
      'alpha/a2/set_consent/email/newsletter',
      'alpha/a2/suppress/email/*',
      'zeta/z1/set_consent/email/*',
      'zeta/z1/set_consent/email/newsletter',
      'zeta/z1/set_consent/sms/*',
      'zeta/z1/suppress/email/*',
    ]);
    expect(planSubject(d, [...recs].reverse(), [...targets].reverse())).toEqual(changes);
  });
});

describe('planSubject: suppressions', () => {
  it('a suppression anywhere is pushed where the platform has a mechanism and the record is not suppressed', () => {
    const b = suppression('hard_bounce', day(1), { source: 'mailchimp' });
    const changes = planSubject(decision(b), [snapshot()], [hubspot]);
    expect(changes).toEqual([
      expect.objectContaining({ op: 'suppress', channel: 'email', purpose: '*', target: null, rule: null, decidedBy: b.id }),
    ]);
    expect(planSubject(decision(b), [snapshot({ suppressed: { email: true } })], [hubspot])).toEqual([]);
    const noMechanism: PlanTarget = { connectorId: 'hubspot', capabilities: capabilities({ suppression: [] }) };
    expect(planSubject(decision(b), [snapshot()], [noMechanism])).toEqual([]);
  });

  it('a grant is never pushed on a suppressed channel (no resubscribe of a bounced address)', () => {
    const b = suppression('hard_bounce', day(2), { source: 'mailchimp' });
    const record = snapshot({ consent: { 'email:*': 'denied' }, suppressed: { email: true } });
    expect(planSubject(decision(grantAll), [record], [hubspot]).map((c) => c.target)).toContain('granted');
    expect(planSubject(decision(grantAll, b), [record], [hubspot])).toEqual([]);
  });
});

describe('planSubject: bare-address platforms', () => {
  const sendgrid: PlanTarget = {
    connectorId: 'sendgrid',
    capabilities: capabilities({ consent: [{ channel: 'email', purpose: '*' }, { channel: 'email', purpose: 'newsletter' }], acceptsUnknownAddresses: true, erase: true }),
  };

  it('synthesizes a record keyed by the address, with only denials and suppressions', () => {
    const nlGrant = grant(day(2), { source: 'cli', purpose: 'newsletter' });
    const d = decision(denyAll, nlGrant, suppression('hard_bounce', day(1)));
    expect(d.permissions.find((p) => p.purpose === 'newsletter')?.state).toBe('granted');
    const changes = planSubject(d, [], [sendgrid]);
    expect(changes.map((c) => `${c.recordId}/${c.op}/${c.purpose}/${String(c.target)}`)).toEqual([`${SUBJECT}/set_consent/*/denied`, `${SUBJECT}/suppress/*/null`]);
    expect(changes.every((c) => c.connectorId === 'sendgrid' && c.subject === SUBJECT && Object.keys(c.meta).length === 0)).toBe(true);
  });

  it('never pushes a grant to an address the platform does not hold', () => {
    expect(planSubject(decision(grantAll), [], [sendgrid])).toEqual([]);
  });

  it('plans against the real record when there is one: a grant lifts a denial it holds, never an unknown', () => {
    const rec = snapshot({ connectorId: 'sendgrid', recordId: 'sg-1', consent: { 'email:newsletter': 'denied' } });
    const changes = planSubject(decision(grantAll), [rec], [sendgrid]);
    expect(changes.map((c) => [c.recordId, c.purpose, c.target])).toEqual([['sg-1', 'newsletter', 'granted']]);
  });

  it('a platform that keeps channel denials (SendGrid global unsubscribes) is never planned a grant it cannot apply', () => {
    const keeps: PlanTarget = { connectorId: 'sendgrid', capabilities: capabilities({ acceptsUnknownAddresses: true, keepsChannelDenial: true }) };
    const globallyOff = snapshot({ connectorId: 'sendgrid', recordId: SUBJECT, consent: { 'email:*': 'denied', 'email:newsletter': 'denied' } });
    expect(planSubject(decision(grantAll), [globallyOff], [keeps])).toEqual([]);
    // Without the global denial, a group denial is still lifted by a grant.
    const groupOff = snapshot({ connectorId: 'sendgrid', recordId: SUBJECT, consent: { 'email:newsletter': 'denied' } });
    expect(planSubject(decision(grantAll), [groupOff], [keeps]).map((c) => `${c.purpose}/${String(c.target)}`)).toEqual(['newsletter/granted']);
  });

  it('where a * denial covers every purpose (HubSpot unsubscribe-all), the pushed snapshot denies them all and no purpose grant is planned under it', () => {
    const caps = capabilities({ channelDenialCoversPurposes: true });
    const covers: PlanTarget = { connectorId: 'hubspot', capabilities: caps };
    const nlGrant = grant(day(5), { source: 'cli', purpose: 'newsletter' });
    const d = decision(denyAll, nlGrant); // * denied, newsletter granted later (rule 4)
    const rec = snapshot({ consent: { 'email:*': 'unknown', 'email:newsletter': 'granted' } });
    const first = planSubject(d, [rec], [covers]);
    expect(first.map((c) => `${c.purpose}/${String(c.target)}`)).toEqual(['*/denied']);
    const after = first.reduce((s, c) => applyChangeToSnapshot(s, c, caps), rec);
    expect(after.consent).toMatchObject({ 'email:*': 'denied', 'email:newsletter': 'denied' });
    // The platform cannot hold "all off but newsletter on": nothing more is planned.
    expect(planSubject(d, [after], [covers])).toEqual([]);
  });

  it('once a denial made the platform hold the address, a later plan is empty (converges in one round)', () => {
    const nlGrant = grant(day(2), { source: 'cli', purpose: 'newsletter' });
    const d = decision(denyAll, nlGrant);
    const first = planSubject(d, [], [sendgrid]);
    expect(first.map((c) => `${c.purpose}/${String(c.target)}`)).toEqual(['*/denied']);
    const held = first.reduce((s, c) => applyChangeToSnapshot(s, c), snapshot({ connectorId: 'sendgrid', recordId: SUBJECT }));
    expect(planSubject(d, [held], [sendgrid])).toEqual([]);
  });

  it('erasure: no erase and nothing pushed for an address the platform does not hold', () => {
    expect(planSubject(decision(denyAll, erasure(day(2))), [], [sendgrid])).toEqual([]);
  });
});

describe('planSubject: erasure', () => {
  const rec = snapshot({ consent: { 'email:*': 'granted' } });

  it('one erase change per record when the platform can erase, and nothing else', () => {
    const t: PlanTarget = { connectorId: 'hubspot', capabilities: capabilities({ erase: true }) };
    const d = decision(grantAll, complaint(day(2)), erasure(day(3)));
    const changes = planSubject(d, [rec, snapshot({ recordId: 'rec-2' })], [t]);
    expect(changes.map((c) => [c.recordId, c.op, c.target])).toEqual([
      ['rec-1', 'erase', null],
      ['rec-2', 'erase', null],
    ]);
  });

  it('falls back to suppress + deny every scope when the platform cannot erase', () => {
    const d = decision(grantAll, erasure(day(3)));
    const changes = planSubject(d, [rec], [hubspot]);
    expect(changes.map((c) => `${c.op}/${c.channel}/${c.purpose}/${String(c.target)}`)).toEqual([
      'set_consent/email/*/denied',
      'set_consent/email/newsletter/denied',
      'suppress/email/*/null',
    ]);
  });
});

describe('planSubject: idempotency keys', () => {
  it('the same decision gives the same keys across calls', () => {
    const rec = snapshot({ consent: { 'email:*': 'granted' } });
    const a = planSubject(decision(denyAll), [rec], [hubspot]);
    const b = planSubject(decision(denyAll), [structuredClone(rec)], [hubspot]);
    expect(a.map((c) => c.key)).toEqual(b.map((c) => c.key));
    expect(new Set(a.map((c) => c.key)).size).toBe(a.length);
  });

  it('a different deciding observation gives a different key', () => {
    const rec = snapshot();
    const a = planSubject(decision(deny(day(1))), [rec], [hubspot]);
    const b = planSubject(decision(deny(day(2))), [rec], [hubspot]);
    expect(a[0]?.decidedBy).not.toBe(b[0]?.decidedBy);
    expect(a[0]?.key).not.toBe(b[0]?.key);
  });
});

describe('applyChangeToSnapshot', () => {
  it('sets consent and suppression without mutating its input; erase is a no-op', () => {
    const rec = snapshot({ consent: { 'email:*': 'granted' } });
    const frozen = structuredClone(rec);
    const [setC, supp] = planSubject(decision(denyAll, complaint(day(1))), [rec], [
      { connectorId: 'hubspot', capabilities: capabilities({ consent: [{ channel: 'email', purpose: '*' }] }) },
    ]);
    if (setC === undefined || supp === undefined) throw new Error('expected two changes');
    const after = applyChangeToSnapshot(applyChangeToSnapshot(rec, setC), supp);
    expect(after.consent['email:*']).toBe('denied');
    expect(after.suppressed['email']).toBe(true);
    expect(rec).toEqual(frozen);
    const erase = { ...setC, op: 'erase' as const, target: null };
    expect(applyChangeToSnapshot(rec, erase)).toEqual(rec);
  });

  it('apply then re-plan is empty (rule 10), including the erasure fallback', () => {
    const rec = snapshot({ consent: { 'email:*': 'granted' } });
    for (const d of [decision(denyAll, suppression('hard_bounce', day(1))), decision(grantAll), decision(grantAll, erasure(day(2)))]) {
      const changes = planSubject(d, [rec], [hubspot]);
      expect(changes.length).toBeGreaterThan(0);
      const after = changes.reduce((s, c) => applyChangeToSnapshot(s, c), rec);
      expect(planSubject(d, [after], [hubspot])).toEqual([]);
    }
  });
});

describe('convergence property (rule 10)', () => {
  const stateArb = fc.constantFrom<ConsentState | undefined>('granted', 'denied', 'unknown', undefined);
  const scopeKeys = ['email:*', 'email:newsletter', 'email:events', 'sms:*'] as const;
  const recordArb = fc.record({
    connectorId: fc.constantFrom('a', 'b', 'c'),
    recordId: fc.constantFrom('r1', 'r2'),
    consent: fc.tuple(...scopeKeys.map(() => stateArb)),
    emailSuppressed: fc.boolean(),
  });
  const capsArb = fc.record({
    consent: fc.subarray([
      { channel: 'email' as const, purpose: '*' },
      { channel: 'email' as const, purpose: 'newsletter' },
      { channel: 'email' as const, purpose: 'events' },
      { channel: 'sms' as const, purpose: '*' },
    ]),
    suppression: fc.subarray(['email' as const, 'sms' as const]),
    pushGrants: fc.boolean(),
    erase: fc.boolean(),
    acceptsUnknownAddresses: fc.boolean(),
  });

  /** The engine, as the test models it: apply each change to its snapshot (creating bare-address ones), drop erased records. */
  function applyAll(records: readonly RecordSnapshot[], changes: readonly Change[]): RecordSnapshot[] {
    const store = new Map(records.map((r) => [`${r.connectorId}/${r.recordId}`, r]));
    const erased = new Set<string>();
    for (const c of changes) {
      const k = `${c.connectorId}/${c.recordId}`;
      if (c.op === 'erase') {
        erased.add(k);
        continue;
      }
      store.set(k, applyChangeToSnapshot(store.get(k) ?? snapshot({ connectorId: c.connectorId, recordId: c.recordId }), c));
    }
    for (const k of erased) store.delete(k);
    return [...store.values()];
  }

  it('applying every planned change and planning again yields nothing; keys are stable', () => {
    fc.assert(
      fc.property(observationsArb, optionsArb, fc.array(recordArb, { maxLength: 5 }), fc.tuple(capsArb, capsArb, capsArb), (obs, opts, recs, caps) => {
        const d = decide(SUBJECT, obs, opts);
        const targets: PlanTarget[] = ['a', 'b', 'c'].map((id, i) => ({ connectorId: id, capabilities: caps[i] ?? caps[0] }));
        // one snapshot per (connector, record id), as a store would hold them
        const byId = new Map<string, RecordSnapshot>();
        for (const r of recs) {
          const consent: Record<string, ConsentState> = {};
          r.consent.forEach((s, i) => {
            const k = scopeKeys[i];
            if (s !== undefined && k !== undefined) consent[k] = s;
          });
          byId.set(`${r.connectorId}/${r.recordId}`, snapshot({ connectorId: r.connectorId, recordId: r.recordId, consent, suppressed: r.emailSuppressed ? { email: true } : {} }));
        }
        const records = [...byId.values()];
        const changes = planSubject(d, records, targets);
        expect(planSubject(d, records, targets)).toEqual(changes);

        const after = applyAll(records, changes);
        const again = planSubject(d, after, targets);
        // The one exception to one-round convergence: a bare-address platform that was just given a denial or
        // suppression now holds the address, so an explicit grant may follow (never before it holds it).
        const synthesized = new Set(changes.filter((c) => !byId.has(`${c.connectorId}/${c.recordId}`)).map((c) => c.connectorId));
        for (const c of again) {
          expect(c).toMatchObject({ op: 'set_consent', target: 'granted', recordId: SUBJECT });
          expect(synthesized.has(c.connectorId)).toBe(true);
        }
        expect(planSubject(d, applyAll(after, again), targets)).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});
