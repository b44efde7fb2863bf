/**
 * bench/api-efficiency: API calls spent applying N corrections, against the true minimum the
 * platforms' batch maxima allow for that work. A naive one-call-per-change sync would spend N.
 * The whole engine runs (opt-outs recorded -> reconcile -> outbox -> push), and only the calls
 * made while applying are counted, from each sandbox's own call counter.
 *   npm run bench -- api-efficiency [--people 10000]
 *
 * The work requested is read from the changes handed to push() (deduplicated by key). One
 * person's "opt out of all email" is several changes per record: (email, *) plus, by policy
 * rule 4, one per mapped purpose. The minimum counts the calls that work needs on each platform,
 * not changes divided by a maximum, because platforms carry several changes in one write:
 *
 *   salesforce  ceil(R / 200) + ceil((I + C) / 200) + sum over types ceil(L_type / 2000) + ceil(X / 200)
 *               R = records updated (flags; one update carries every flag of a record, and the
 *               IndividualId link of a new Individual); C = ContactPointTypeConsent records
 *               created (one per purpose change, and per channel grant); I = Individuals
 *               created (records with consents and no Individual yet); L_type = those records
 *               per object type (Contact, Lead), whose IndividualId is re-read (sObject
 *               Collections retrieve, <= 2000 ids) before an Individual is made, so a record
 *               linked since the pull does not get a second one; X = ids deleted by erasures.
 *               (Creates may mix types; updates, creates, retrieves and deletes are separate
 *               calls; 200 records a call.)
 *   hubspot     ceil(A / 100) + ceil(W / 100) + E
 *               A = addresses denied (email, *): v4 batch/unsubscribe-all, which sets every
 *               subscription UNSUBSCRIBED, so a purpose denial of such an address needs no write
 *               of its own; W = other subscription statuses written (v4 batch/write, per address
 *               and mapped subscription type); E = records erased (gdpr-delete has no batch).
 *   mailchimp   sum over lists ceil(M_list / 500) + 2 G + E
 *               M = members written (one bulk item carries a member's status and every
 *               permission); G = members re-granted (GET + PUT pending); E = members erased.
 *   sendgrid    ceil(U / 1000) + sum over groups ceil(D_group / 1000) + per-address calls
 *               U = addresses globally unsubscribed (denials of (email, *), suppressions,
 *               erasures): the global unsubscribe stops every group's mail and reads back as
 *               every purpose denied, so purpose denials of such an address need no group call;
 *               D = other addresses denied a group's purpose; grants and erasures add their
 *               per-address deletes and look-ups (SendGrid has no bulk delete).
 *
 * After the apply, every platform is pulled in full and every person re-decided: `replanned`
 * counts the corrections that would still be planned (must be 0: what was written reads back).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_GROUPS } from '../../connectors/sendgrid/sandbox/index.js';
import { openRuntime } from '../../src/cli/runtime.js';
import type { Connector } from '../../src/connectors/contract.js';
import { applyAll } from '../../src/engine/apply.js';
import { pullAll } from '../../src/engine/pull.js';
import type { Engine } from '../../src/engine/context.js';
import { planSubjectState } from '../../src/engine/decide-subject.js';
import { reconcile } from '../../src/engine/reconcile.js';
import { optOut } from '../../src/engine/statements.js';
import { startSandboxes } from '../../src/demo/sandboxes.js';
import { ALL_PURPOSES, normalizeEmail, type Change } from '../../src/model/index.js';
import { generatePeople } from '../../src/sandbox/seed.js';

const ceil = (n: number, max: number): number => Math.ceil(n / max);
const addressOf = (c: Change): string => {
  const n = normalizeEmail(c.subject);
  return n.ok ? n.email : c.subject;
};
const count = <K>(m: Map<K, number>, k: K, by = 1): void => {
  m.set(k, (m.get(k) ?? 0) + by);
};

function salesforceMinimum(changes: readonly Change[]): number {
  const updated = new Set<string>();
  const withConsents = new Map<string, Change>();
  let consents = 0;
  const erased = new Set<string>();
  for (const c of changes) {
    if (c.op === 'erase') {
      erased.add(c.recordId);
      if (typeof c.meta['individualId'] === 'string') erased.add(c.meta['individualId']);
      continue;
    }
    if (c.op !== 'set_consent') continue;
    if (c.purpose === ALL_PURPOSES) updated.add(c.recordId);
    if (c.purpose !== ALL_PURPOSES || c.target === 'granted') {
      consents++;
      withConsents.set(c.recordId, c);
    }
  }
  const lookups = new Map<string, number>();
  let individuals = 0;
  for (const [id, c] of withConsents) {
    if (typeof c.meta['individualId'] === 'string' && c.meta['individualId'] !== '') continue;
    individuals++;
    updated.add(id); // the new Individual is linked by the record's update
    count(lookups, String(c.meta['type'] ?? 'Contact'));
  }
  let reads = 0;
  for (const n of lookups.values()) reads += ceil(n, 2000);
  return ceil(updated.size, 200) + ceil(individuals + consents, 200) + reads + ceil(erased.size, 200);
}

function hubspotMinimum(changes: readonly Change[], typesOf: (purpose: string) => number): number {
  const allOff = new Set<string>();
  for (const c of changes) if (c.op === 'set_consent' && c.purpose === ALL_PURPOSES && c.target === 'denied') allOff.add(addressOf(c));
  const writes = new Set<string>();
  const erased = new Set<string>();
  for (const c of changes) {
    if (c.op === 'erase') erased.add(c.recordId);
    else if (c.op === 'set_consent' && c.purpose !== ALL_PURPOSES && !(c.target === 'denied' && allOff.has(addressOf(c)))) {
      for (let i = 0; i < typesOf(c.purpose); i++) writes.add(`${addressOf(c)}\u0000${c.purpose}\u0000${i}`);
    }
  }
  return ceil(allOff.size, 100) + ceil(writes.size, 100) + erased.size;
}

function mailchimpMinimum(changes: readonly Change[]): number {
  const members = new Map<string, Set<string>>();
  const wide = new Map<string, { denied: boolean; granted: boolean }>();
  const erased = new Set<string>();
  for (const c of changes) {
    const list = String(c.meta['listId'] ?? '');
    const member = `${list}\u0000${c.recordId}`;
    if (c.op === 'erase') {
      erased.add(member);
      continue;
    }
    const w = wide.get(member) ?? { denied: false, granted: false };
    if (c.op === 'suppress' || (c.purpose === ALL_PURPOSES && c.target === 'denied')) w.denied = true;
    else if (c.purpose === ALL_PURPOSES) w.granted = true;
    wide.set(member, w);
    const set = members.get(list) ?? new Set<string>();
    set.add(member);
    members.set(list, set);
  }
  let calls = erased.size;
  for (const set of members.values()) {
    const regrants = [...set].filter((m) => wide.get(m)?.granted === true && wide.get(m)?.denied !== true).length;
    calls += ceil(set.size - regrants, 500) + 2 * regrants;
  }
  return calls;
}

function sendgridMinimum(changes: readonly Change[], groupsOf: (purpose: string) => number[]): number {
  const global = new Set<string>();
  for (const c of changes) if (c.op !== 'set_consent' || (c.purpose === ALL_PURPOSES && c.target === 'denied')) global.add(addressOf(c));
  const groups = new Map<number, Set<string>>();
  let perAddress = 0;
  const erased = new Set<string>();
  for (const c of changes) {
    if (c.op === 'erase') erased.add(addressOf(c));
    if (c.op !== 'set_consent') continue;
    if (c.purpose === ALL_PURPOSES) {
      if (c.target === 'granted') perAddress++; // look-up of the global unsubscribe
    } else if (c.target === 'granted') {
      perAddress += groupsOf(c.purpose).length + 1; // a delete per group, then the look-up
    } else if (!global.has(addressOf(c))) {
      for (const g of groupsOf(c.purpose)) {
        const s = groups.get(g) ?? new Set<string>();
        s.add(addressOf(c));
        groups.set(g, s);
      }
    }
  }
  let calls = ceil(global.size, 1000) + perAddress;
  for (const s of groups.values()) calls += ceil(s.size, 1000);
  if (erased.size > 0) calls += 4 * ceil(erased.size, 1000); // bounces, blocks, spam reports, invalid emails
  return calls;
}

/** Changes a full re-decision of these people would plan now, per connector (read only). */
async function replan(engine: Engine, emails: readonly string[]): Promise<{ byConnector: Record<string, number> }> {
  const byConnector: Record<string, number> = {};
  for (const email of emails) {
    const n = normalizeEmail(email);
    const plan = planSubjectState(engine, await engine.store.subjectState(n.ok ? n.email : email));
    for (const c of plan.changes) byConnector[c.connectorId] = (byConnector[c.connectorId] ?? 0) + 1;
  }
  return { byConnector };
}

/** Record what each connector is asked to do (deduplicated by change key). */
function recordPushes(connectors: readonly Connector[]): Map<string, Map<string, Change>> {
  const seen = new Map<string, Map<string, Change>>();
  for (const c of connectors) {
    const mine = new Map<string, Change>();
    seen.set(c.id, mine);
    const push = c.push.bind(c);
    (c as { push: Connector['push'] }).push = (changes) => {
      for (const ch of changes) mine.set(ch.key, ch);
      return push(changes);
    };
  }
  return seen;
}

export async function benchApiEfficiency(opts: { people: number; seed: number }): Promise<void> {
  // Clean people (no prior opt-outs, bounces or erasures) present everywhere, so each opt-out
  // is a correction in every platform.
  const seedRates = {
    presence: { salesforce: 1, hubspot: 1, mailchimp: 1, sendgrid: 1 },
    optOutOne: 0, optOutTwo: 0, purposeOptOut: 0, hardBounce: 0, complaint: 0, erasure: 0, duplicate: 0, caseVariant: 0,
  };
  const set = await startSandboxes({ people: opts.people, seed: opts.seed, seedNow: '2026-11-01T00:00:00Z', seedRates, hubspot: { tenSecondlyLimit: 1_000_000, dailyLimit: 100_000_000 } });
  const dir = mkdtempSync(join(tmpdir(), 'consentd-apieff-'));
  try {
    const config = join(dir, 'consentd.yaml');
    writeFileSync(config, set.configYaml({ storePath: join(dir, 'consentd.db'), port: 0, logLevel: 'warn', schedule: 'none' }));
    const rt = openRuntime({ config });
    await pullAll(rt.engine, rt.connectors, { full: true });
    await reconcile(rt.engine, 'normal');
    await applyAll(rt.engine, rt.connectors, { until: 'drained', maxWaitMs: 0 }); // settle the seed's own disagreements first
    const people = [...generatePeople(opts.people, opts.seed, { now: '2026-11-01T00:00:00Z', rates: seedRates })];
    // Each opt-out is decided at once (the instant path) and its corrections queued.
    const byConnector: Record<string, number> = {};
    for (const p of people) {
      const r = await optOut(rt.engine, p.email, { channel: 'email', purpose: '*' }, { evidence: 'bench' });
      for (const [id, n] of Object.entries(r.reconcile.byConnector)) byConnector[id] = (byConnector[id] ?? 0) + n;
    }
    const sandboxes = { salesforce: set.salesforce, hubspot: set.hubspot, mailchimp: set.mailchimp, sendgrid: set.sendgrid };
    const pushed = recordPushes(rt.connectors);
    for (const sb of Object.values(sandboxes)) sb.calls.reset();
    const applied = await applyAll(rt.engine, rt.connectors, { until: 'drained', maxWaitMs: 60_000 });
    const calls = Object.fromEntries(Object.entries(sandboxes).map(([id, sb]) => [id, { total: sb.calls.total, detail: sb.calls.snapshot() }] as const));

    // Convergence: pull everything again and re-plan everyone (whether or not the pull marked
    // them dirty); nothing may be planned.
    await pullAll(rt.engine, rt.connectors, { full: true });
    const again = await replan(rt.engine, people.map((p) => p.email));

    const typesOf = (purpose: string): number => set.hubspot.subscriptionTypes.filter((t) => t.purpose === purpose).length;
    const groupsOf = (purpose: string): number[] => DEFAULT_GROUPS.filter((g) => (g.purpose ?? 'newsletter') === purpose).map((g) => g.id);
    const minimumOf: Record<string, (changes: readonly Change[]) => number> = {
      salesforce: salesforceMinimum,
      hubspot: (cs) => hubspotMinimum(cs, typesOf),
      mailchimp: mailchimpMinimum,
      sendgrid: (cs) => sendgridMinimum(cs, groupsOf),
    };
    const rows: Record<string, Record<string, number | string>> = {};
    for (const id of Object.keys(sandboxes)) {
      const work = [...(pushed.get(id)?.values() ?? [])];
      const minimum = minimumOf[id]?.(work) ?? work.length;
      const used = calls[id]?.total ?? 0;
      rows[id] = {
        corrections: byConnector[id] ?? 0,
        applied: applied.get(id)?.ok ?? 0,
        api_calls: used,
        minimum,
        ratio: minimum === 0 ? '-' : (used / minimum).toFixed(3),
        naive: work.length,
        replanned: again.byConnector[id] ?? 0,
      };
    }
    await rt.close();
    if (process.env['APIEFF_DETAIL'] === '1') for (const [id, c] of Object.entries(calls)) console.log(id, c.detail);
    console.log(`\napi-efficiency, ${opts.people} people opting out of all email:`);
    console.table(rows);
  } finally {
    await set.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
