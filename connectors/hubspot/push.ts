import type { PushResult } from '../../src/connectors/contract.js';
import { normalizeEmail } from '../../src/model/email.js';
import { ALL_PURPOSES, type Change } from '../../src/model/types.js';
import { BATCH_MAX, classifyHubSpotError, type Failure, type HubSpotApi } from './client.js';
import { transientItemError, V4, v4Answer, type CommPrefs, type V4Error } from './commprefs.js';
import { subscriptionIdsFor, type SubscriptionMap } from './mapping.js';

/*
 * Push: changes grouped per API so N changes take the fewest calls the batch maxima allow.
 * - set_consent (email, *) denied -> v4 batch/unsubscribe-all (100 addresses a call);
 *   v3: unsubscribe from every subscription type, one call each (v3 has no "all").
 * - set_consent (email, purpose) -> v4 batch/write (100 statuses a call): UNSUBSCRIBED, or
 *   SUBSCRIBED with legalBasis CONSENT_WITH_NOTICE and the deciding rule / observation as the
 *   explanation; v3: unsubscribe per type (grants cannot be pushed through v3).
 * - erase -> POST /crm/v3/objects/contacts/gdpr-delete, one call per record (no batch exists).
 * Statuses belong to the address, so duplicates of one person share one input. Per-item answers
 * map back to every change key: ok / retry (429, 5xx, timeouts, HubSpot's transient item
 * errors) / failed (validation, with HubSpot's message). Idempotent: "already unsubscribed"
 * (v3 400, v4 NO_STATUS_CHANGE) and "already deleted" (404 on erase) are ok.
 * Denials of all email are written after per-purpose writes in the same push: HubSpot lifts
 * "unsubscribed from all" on a subscription, and a denial must be the last word.
 * A purpose denial of an address this push also unsubscribes from all email costs no write:
 * unsubscribe-all sets every subscription type UNSUBSCRIBED (v4; v3 does it type by type), so
 * the change takes the outcome of that address's unsubscribe-all. A push may hold any number of
 * changes (limits.batchSize: BATCH_MAX addresses' worth of every scope, times PUSH_CALLS); each
 * API is called once per <= 100 inputs.
 */

export interface PushDeps {
  api: HubSpotApi;
  prefs: CommPrefs;
  subscriptions: SubscriptionMap;
  /** Every subscription type id of the account (v3 "unsubscribe from all"); cached by the caller. */
  allSubscriptionIds: () => Promise<string[]>;
}

type Outcome = { status: 'ok' } | { status: 'retry'; reason: string; retryAfterMs?: number } | { status: 'failed'; reason: string; code?: string };

const ALREADY = /already (un)?subscribed|NO_STATUS_CHANGE/i;

function fromFailure(f: Failure): Outcome {
  if (f.retry) return f.retryAfterMs !== undefined ? { status: 'retry', reason: f.reason, retryAfterMs: f.retryAfterMs } : { status: 'retry', reason: f.reason };
  return f.category !== undefined ? { status: 'failed', reason: f.reason, code: f.category } : { status: 'failed', reason: f.reason };
}

function fromItemError(e: V4Error): Outcome {
  const reason = `HubSpot ${e.category ?? 'error'}${e.subCategory ? ` (${e.subCategory})` : ''}: ${e.message ?? 'item failed'}`;
  if (transientItemError(e)) return { status: 'retry', reason };
  return e.category !== undefined ? { status: 'failed', reason, code: e.category } : { status: 'failed', reason };
}

function toResult(key: string, o: Outcome): PushResult {
  return { key, ...o } as PushResult;
}

/** Worst of several outcomes for one change: failed > retry > ok. */
function worst(outcomes: Outcome[]): Outcome {
  return outcomes.find((o) => o.status === 'failed') ?? outcomes.find((o) => o.status === 'retry') ?? { status: 'ok' };
}

function chunks<T>(xs: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

interface WriteItem {
  email: string;
  subscriptionId: string;
  state: 'SUBSCRIBED' | 'UNSUBSCRIBED';
  explanation: string;
}

const itemKey = (email: string, subscriptionId: string): string => `${email}\u0000${subscriptionId}`;

export function explanationOf(c: Change): string {
  return `consentd: ${c.rule ?? 'policy'}${c.decidedBy ? ` (decided by observation ${c.decidedBy})` : ''}`;
}

export async function pushChanges(deps: PushDeps, changes: Change[]): Promise<PushResult[]> {
  const results = new Map<string, Outcome>();
  const allOff = new Map<string, string[]>(); // email -> change keys
  const writes = new Map<string, { item: WriteItem; keys: string[] }>();
  const perChangeItems = new Map<string, string[]>(); // change key -> write item keys
  const erases = new Map<string, string[]>(); // record id -> change keys
  const covered = new Map<string, string>(); // change key -> address whose unsubscribe-all carries it

  // Addresses this push unsubscribes from all email: unsubscribe-all sets every subscription
  // UNSUBSCRIBED, so their purpose denials are carried by that call (see below).
  const allOffHere = new Set<string>();
  for (const c of changes) {
    if (c.op !== 'set_consent' || c.channel !== 'email' || c.purpose !== ALL_PURPOSES || c.target !== 'denied') continue;
    const e = normalizeEmail(c.subject);
    if (e.ok) allOffHere.add(e.email);
  }

  for (const c of changes) {
    const email = normalizeEmail(c.subject);
    if (c.op === 'erase') {
      erases.set(c.recordId, [...(erases.get(c.recordId) ?? []), c.key]);
      continue;
    }
    if (c.op === 'suppress') {
      results.set(c.key, { status: 'failed', reason: 'HubSpot bounce and quarantine state is read-only: it cannot be suppressed through the API', code: 'UNSUPPORTED' });
      continue;
    }
    if (c.channel !== 'email' || c.target === null) {
      results.set(c.key, { status: 'failed', reason: `HubSpot only expresses email consent (got ${c.channel}, target ${String(c.target)})`, code: 'UNSUPPORTED' });
      continue;
    }
    if (!email.ok) {
      results.set(c.key, { status: 'failed', reason: `invalid email: ${email.reason}`, code: 'INVALID_EMAIL' });
      continue;
    }
    if (c.purpose === ALL_PURPOSES) {
      if (c.target === 'granted') {
        // Nothing to write: "not unsubscribed from all" is HubSpot's default; grants are per subscription type.
        results.set(c.key, { status: 'ok' });
        continue;
      }
      allOff.set(email.email, [...(allOff.get(email.email) ?? []), c.key]);
      continue;
    }
    const ids = subscriptionIdsFor(deps.subscriptions, c.purpose);
    if (ids.length === 0) {
      results.set(c.key, { status: 'failed', reason: `purpose ${c.purpose} is not mapped to a HubSpot subscription type (settings.subscriptions)`, code: 'UNMAPPED_PURPOSE' });
      continue;
    }
    if (c.target === 'denied' && allOffHere.has(email.email)) {
      // Carried by this push's unsubscribe-all of the address (every type ends UNSUBSCRIBED, v4
      // and v3 alike): its outcome is this change's, and no write of its own is needed. The
      // engine records the denial in the stored snapshot; the next pull reads it back.
      covered.set(c.key, email.email);
      continue;
    }
    const itemKeys: string[] = [];
    for (const subscriptionId of ids) {
      const k = itemKey(email.email, subscriptionId);
      const w = writes.get(k) ?? { item: { email: email.email, subscriptionId, state: c.target === 'granted' ? 'SUBSCRIBED' : 'UNSUBSCRIBED', explanation: explanationOf(c) }, keys: [] };
      // Two changes disagreeing on one status: the denial wins.
      if (c.target === 'denied') w.item.state = 'UNSUBSCRIBED';
      w.keys.push(c.key);
      writes.set(k, w);
      itemKeys.push(k);
    }
    perChangeItems.set(c.key, itemKeys);
  }

  const itemOutcomes = new Map<string, Outcome>();
  const allOffOutcomes = new Map<string, Outcome>();
  if (writes.size > 0 || allOff.size > 0) {
    let mode: 'v4' | 'v3' | null = null;
    try {
      mode = await deps.prefs.resolve();
    } catch (e) {
      const o = fromFailure(classifyHubSpotError(e));
      for (const k of writes.keys()) itemOutcomes.set(k, o);
      for (const k of allOff.keys()) allOffOutcomes.set(k, o);
    }
    if (mode === 'v4') {
      await writeV4(deps.api, [...writes.values()].map((w) => w.item), itemOutcomes);
      await unsubscribeAllV4(deps.api, [...allOff.keys()], allOffOutcomes);
    } else if (mode === 'v3') {
      await writeV3(deps.api, [...writes.values()].map((w) => w.item), itemOutcomes);
      await unsubscribeAllV3(deps.api, deps.allSubscriptionIds, [...allOff.keys()], allOffOutcomes);
    }
  }
  for (const [key, items] of perChangeItems) results.set(key, worst(items.map((k) => itemOutcomes.get(k) ?? { status: 'retry', reason: 'no answer for this item' })));
  for (const [key, email] of covered) results.set(key, allOffOutcomes.get(email) ?? { status: 'retry', reason: 'no answer for this address' });
  for (const [email, keys] of allOff) for (const key of keys) results.set(key, allOffOutcomes.get(email) ?? { status: 'retry', reason: 'no answer for this address' });
  await Promise.all(
    [...erases].map(async ([recordId, keys]) => {
      const o = await erase(deps.api, recordId);
      for (const key of keys) results.set(key, o);
    }),
  );
  return changes.map((c) => toResult(c.key, results.get(c.key) ?? { status: 'retry', reason: 'not processed' }));
}

async function writeV4(api: HubSpotApi, items: WriteItem[], out: Map<string, Outcome>): Promise<void> {
  await Promise.all(
    chunks(items, BATCH_MAX).map(async (chunk) => {
      const inputs = chunk.map((i) => {
        const input: Record<string, unknown> = { subscriberIdString: i.email, subscriptionId: Number(i.subscriptionId), statusState: i.state, channel: 'EMAIL' };
        if (i.state === 'SUBSCRIBED') {
          input['legalBasis'] = 'CONSENT_WITH_NOTICE';
          input['legalBasisExplanation'] = i.explanation;
        }
        return input;
      });
      try {
        const answer = v4Answer((await api.raw('POST', `${V4}/batch/write`, { inputs })).body);
        const done = new Set<string>();
        for (const r of answer.results) {
          const who = normalizeEmail(r['subscriberIdString']);
          if (who.ok) done.add(itemKey(who.email, String(r['subscriptionId'])));
        }
        const errs = byAddress(answer.errors);
        for (const i of chunk) {
          const k = itemKey(i.email, i.subscriptionId);
          const err = errs.get(i.email);
          out.set(k, done.has(k) ? { status: 'ok' } : err ? fromItemError(err) : { status: 'retry', reason: 'HubSpot answered without this status' });
        }
      } catch (e) {
        const o = alreadyOk(e) ?? fromFailure(classifyHubSpotError(e));
        for (const i of chunk) out.set(itemKey(i.email, i.subscriptionId), o);
      }
    }),
  );
}

async function unsubscribeAllV4(api: HubSpotApi, emails: string[], out: Map<string, Outcome>): Promise<void> {
  await Promise.all(
    chunks(emails, BATCH_MAX).map(async (chunk) => {
      try {
        const answer = v4Answer((await api.raw('POST', `${V4}/batch/unsubscribe-all`, { inputs: chunk }, { channel: 'EMAIL' })).body);
        const done = new Set<string>();
        for (const r of answer.results) {
          const who = normalizeEmail(r['subscriberIdString']);
          if (who.ok) done.add(who.email);
        }
        const errs = byAddress(answer.errors);
        for (const email of chunk) {
          const err = errs.get(email);
          out.set(email, done.has(email) ? { status: 'ok' } : err ? fromItemError(err) : { status: 'retry', reason: 'HubSpot answered without this address' });
        }
      } catch (e) {
        const o = alreadyOk(e) ?? fromFailure(classifyHubSpotError(e));
        for (const email of chunk) out.set(email, o);
      }
    }),
  );
}

function byAddress(errors: V4Error[]): Map<string, V4Error> {
  const m = new Map<string, V4Error>();
  for (const e of errors) {
    for (const id of e.context?.ids ?? []) {
      const who = normalizeEmail(id);
      m.set(who.ok ? who.email : id, e);
    }
  }
  return m;
}

/** "Already unsubscribed" is what a denial wanted: ok. */
function alreadyOk(e: unknown): Outcome | undefined {
  const f = classifyHubSpotError(e);
  return !f.retry && f.status === 400 && ALREADY.test(f.reason) && !/opted out/i.test(f.reason) ? { status: 'ok' } : undefined;
}

async function v3One(api: HubSpotApi, email: string, subscriptionId: string): Promise<Outcome> {
  try {
    await api.v3Unsubscribe(email, subscriptionId);
    return { status: 'ok' };
  } catch (e) {
    return alreadyOk(e) ?? fromFailure(classifyHubSpotError(e));
  }
}

async function writeV3(api: HubSpotApi, items: WriteItem[], out: Map<string, Outcome>): Promise<void> {
  await Promise.all(
    items.map(async (i) => {
      const k = itemKey(i.email, i.subscriptionId);
      if (i.state === 'SUBSCRIBED') {
        out.set(k, { status: 'failed', reason: 'communication preferences v3 cannot resubscribe an address; enable v4 (commPrefs: v4)', code: 'UNSUPPORTED' });
        return;
      }
      out.set(k, await v3One(api, i.email, i.subscriptionId));
    }),
  );
}

async function unsubscribeAllV3(api: HubSpotApi, allIds: () => Promise<string[]>, emails: string[], out: Map<string, Outcome>): Promise<void> {
  if (emails.length === 0) return;
  let ids: string[];
  try {
    ids = await allIds();
  } catch (e) {
    const o = fromFailure(classifyHubSpotError(e));
    for (const email of emails) out.set(email, o);
    return;
  }
  await Promise.all(
    emails.map(async (email) => {
      out.set(email, worst(await Promise.all(ids.map((id) => v3One(api, email, id)))));
    }),
  );
}

async function erase(api: HubSpotApi, recordId: string): Promise<Outcome> {
  try {
    await api.raw('POST', '/crm/v3/objects/contacts/gdpr-delete', { objectId: recordId });
    return { status: 'ok' };
  } catch (e) {
    const f = classifyHubSpotError(e);
    // Already deleted: what an erasure wanted.
    if (f.status === 404) return { status: 'ok' };
    return fromFailure(f);
  }
}
