/**
 * Push: a batch of changes in as few calls as SendGrid allows.
 *
 * - denial of (email, *) and `suppress`  -> POST /asm/suppressions/global, <= 1000 addresses a call.
 *   SendGrid's bounce / block / spam lists cannot be written for a bounce that happened
 *   elsewhere, so a suppression is written as a global unsubscribe: it stops every marketing
 *   and group send to the address (mail sent without an unsubscribe group and with
 *   bypass settings still goes through — that is the sender's choice, not ours).
 * - denial of a purpose                  -> POST /asm/groups/{id}/suppressions per mapped group, <= 1000 a call;
 *   when the same push unsubscribes the address globally (denial of (email, *), suppress, erase),
 *   no group call: the global unsubscribe stops every group's mail and reads back as every
 *   purpose denied (mapping.ts), so the denial takes that address's global outcome. (Should the
 *   global unsubscribe be removed by hand later, the next pull reads the purposes as no longer
 *   denied and the planner writes the group suppressions then.)
 * - grant of a purpose                   -> DELETE /asm/groups/{id}/suppressions/{email} (no bulk delete exists),
 *   then a look-up of the global unsubscribe: while it stands the grant cannot take effect, and the
 *   change fails with that reason.
 * - grant of (email, *)                  -> never: consentd does not lift a global unsubscribe (it
 *   may be the person's only record of opting out, and SendGrid keeps no "resubscribe" event for
 *   it). If the address is globally unsubscribed the change fails: "remove it by hand"; if not,
 *   there is nothing to do and it is ok.
 * - erase                                -> delete the address from bounces, blocks, spam reports,
 *   invalid emails (bulk, one call per list) and from every group, and ENSURE a global
 *   unsubscribe: deleting every suppression would let mail flow to a person who asked to be
 *   forgotten; policy rule 6 says "anonymize and suppress" where deletion is impossible, and an
 *   address is the one thing SendGrid needs to keep suppressing.
 *
 * Adding an address twice is harmless, so every change is idempotent. A 400 on a bulk call
 * (SendGrid refuses the whole call for one address it finds invalid) is bisected so that the
 * others go through and only the bad address fails. Transport errors and 429/5xx are classified
 * by src/engine/retry.ts: `retry` with SendGrid's wait (Retry-After / X-RateLimit-Reset).
 */
import type { PushResult } from '../../src/connectors/contract.js';
import { classifyError } from '../../src/engine/retry.js';
import { ALL_PURPOSES, normalizeEmail, scopeKey, type Change } from '../../src/model/index.js';
import { addGroupSuppressions, groupsSuppressing, removeGroupSuppression } from './groups.js';
import type { SendGridHttp } from './http.js';
import { DELETABLE_LISTS, deleteFromList } from './lists.js';
import type { PurposeMap } from './mapping.js';
import { MAX_RECIPIENTS_PER_CALL } from './settings.js';
import { addGlobalUnsubscribes, isGloballyUnsubscribed } from './suppressions.js';

export const GLOBAL_NEVER_LIFTED = 'SendGrid global unsubscribes are never lifted by consentd; remove it by hand if the person re-consented';

type Outcome = { status: 'ok' } | { status: 'retry'; reason: string; retryAfterMs?: number } | { status: 'failed'; reason: string; code?: string };

const OK: Outcome = { status: 'ok' };

export interface PushDeps {
  http: SendGridHttp;
  purposes: PurposeMap;
  concurrency: number;
  now: () => number;
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { status?: unknown } | null)?.status;
  return typeof s === 'number' ? s : undefined;
}

function outcomeOf(err: unknown, now: number): Outcome {
  const v = classifyError(err, now);
  if (v.retry) return v.waitMs === undefined ? { status: 'retry', reason: v.reason } : { status: 'retry', reason: v.reason, retryAfterMs: v.waitMs };
  const status = statusOf(err);
  return status === undefined ? { status: 'failed', reason: v.reason } : { status: 'failed', reason: v.reason, code: `SENDGRID_HTTP_${status}` };
}

/** Run fn over items with at most n in flight. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(n, items.length)) }, worker));
}

/** Per change: every outcome of the calls it needed; the worst one wins (failed > retry > ok). */
class Outcomes {
  private readonly byKey = new Map<string, Outcome[]>();

  add(key: string, o: Outcome): void {
    const list = this.byKey.get(key) ?? [];
    list.push(o);
    this.byKey.set(key, list);
  }

  result(key: string): PushResult {
    const list = this.byKey.get(key) ?? [];
    const failed = list.find((o) => o.status === 'failed');
    if (failed) return { key, ...failed };
    const retries = list.filter((o): o is Extract<Outcome, { status: 'retry' }> => o.status === 'retry');
    if (retries.length > 0) {
      const waits = retries.map((r) => r.retryAfterMs).filter((w): w is number => w !== undefined);
      const first = retries[0] as Extract<Outcome, { status: 'retry' }>;
      return waits.length > 0 ? { key, status: 'retry', reason: first.reason, retryAfterMs: Math.max(...waits) } : { key, status: 'retry', reason: first.reason };
    }
    return { key, status: 'ok' };
  }
}

/** address -> keys of the changes that need it, for one bulk target. */
class Recipients {
  readonly byEmail = new Map<string, string[]>();
  add(email: string, key: string): void {
    const keys = this.byEmail.get(email) ?? [];
    keys.push(key);
    this.byEmail.set(email, keys);
  }
}

export async function pushSendGrid(deps: PushDeps, changes: Change[]): Promise<PushResult[]> {
  const { http, purposes } = deps;
  const out = new Outcomes();
  const global = new Recipients();
  const groupAdds = new Map<number, Recipients>();
  const groupDeletes: Array<{ groupId: number; email: string; key: string; missingGroupOk: boolean }> = [];
  const globalChecks: Array<{ email: string; key: string; purpose: string }> = [];
  const erasures = new Map<string, { keys: string[]; groups: number[] | null }>();

  const emailOf = (c: Change): string | null => {
    const byRecord = normalizeEmail(c.recordId);
    const n = byRecord.ok ? byRecord : normalizeEmail(c.subject);
    return n.ok ? n.email : null;
  };
  // Addresses this push unsubscribes globally: their purpose denials ride on that call.
  const globalHere = new Set<string>();
  for (const c of changes) {
    const email = c.channel === 'email' ? emailOf(c) : null;
    if (email !== null && (c.op !== 'set_consent' || (c.purpose === ALL_PURPOSES && c.target === 'denied'))) globalHere.add(email);
  }

  for (const c of changes) {
    const fail = (reason: string, code = 'SENDGRID_UNSUPPORTED'): void => out.add(c.key, { status: 'failed', reason, code });
    if (c.channel !== 'email') {
      fail(`SendGrid only suppresses email addresses (channel ${c.channel})`);
      continue;
    }
    const email = emailOf(c);
    if (email === null) {
      fail(`not an email address: ${c.recordId}`, 'INVALID_EMAIL');
      continue;
    }
    if (c.op === 'suppress') {
      global.add(email, c.key);
    } else if (c.op === 'erase') {
      const meta = c.meta['groups'];
      const groups = Array.isArray(meta) && meta.every((g) => typeof g === 'number') ? (meta as number[]) : null;
      const e = erasures.get(email) ?? { keys: [], groups };
      e.keys.push(c.key);
      erasures.set(email, e);
      global.add(email, c.key);
    } else if (c.target === null) {
      fail('set_consent without a target state');
    } else if (c.purpose === ALL_PURPOSES) {
      if (c.target === 'denied') global.add(email, c.key);
      else globalChecks.push({ email, key: c.key, purpose: ALL_PURPOSES });
    } else {
      const groups = purposes.groupsOf(c.purpose);
      if (groups.length === 0) {
        fail(`no SendGrid unsubscribe group is mapped to purpose "${c.purpose}"`);
        continue;
      }
      if (c.target === 'denied' && globalHere.has(email)) {
        // The global unsubscribe written for this address in this push stops every group's
        // mail and reads back as every purpose denied (mapping.ts): it carries this denial.
        global.add(email, c.key);
      } else if (c.target === 'denied') {
        for (const g of groups) {
          let r = groupAdds.get(g);
          if (r === undefined) groupAdds.set(g, (r = new Recipients()));
          r.add(email, c.key);
        }
      } else {
        for (const g of groups) groupDeletes.push({ groupId: g, email, key: c.key, missingGroupOk: false });
        globalChecks.push({ email, key: c.key, purpose: c.purpose });
      }
    }
  }

  /** One bulk call per <= 1000 addresses; a 400 is bisected down to the refused address. */
  const bulk = async (r: Recipients, call: (emails: string[]) => Promise<void>): Promise<void> => {
    const settle = (emails: string[], o: Outcome): void => {
      for (const e of emails) for (const k of r.byEmail.get(e) ?? []) out.add(k, o);
    };
    const run = async (emails: string[]): Promise<void> => {
      try {
        await call(emails);
        settle(emails, OK);
      } catch (err) {
        if (statusOf(err) === 400 && emails.length > 1) {
          const mid = Math.ceil(emails.length / 2);
          await run(emails.slice(0, mid));
          await run(emails.slice(mid));
          return;
        }
        settle(emails, outcomeOf(err, deps.now()));
      }
    };
    const all = [...r.byEmail.keys()];
    for (let i = 0; i < all.length; i += MAX_RECIPIENTS_PER_CALL) await run(all.slice(i, i + MAX_RECIPIENTS_PER_CALL));
  };

  // Erasure first: clear the lists and groups; the global unsubscribe is ensured with the other adds.
  if (erasures.size > 0) {
    const emails = [...erasures.keys()];
    for (const type of DELETABLE_LISTS) {
      for (let i = 0; i < emails.length; i += MAX_RECIPIENTS_PER_CALL) {
        const part = emails.slice(i, i + MAX_RECIPIENTS_PER_CALL);
        let o: Outcome = OK;
        try {
          await deleteFromList(http, type, part);
        } catch (err) {
          o = outcomeOf(err, deps.now());
        }
        for (const e of part) for (const k of erasures.get(e)?.keys ?? []) out.add(k, o);
      }
    }
    const lookups = [...erasures.entries()].filter(([, e]) => e.groups === null);
    await pool(lookups, deps.concurrency, async ([email, e]) => {
      try {
        e.groups = await groupsSuppressing(http, email);
      } catch (err) {
        for (const k of e.keys) out.add(k, outcomeOf(err, deps.now()));
      }
    });
    for (const [email, e] of erasures) for (const g of e.groups ?? []) for (const k of e.keys) groupDeletes.push({ groupId: g, email, key: k, missingGroupOk: true });
  }

  if (global.byEmail.size > 0) await bulk(global, (emails) => addGlobalUnsubscribes(http, emails));
  for (const [groupId, r] of [...groupAdds.entries()].sort(([a], [b]) => a - b)) await bulk(r, (emails) => addGroupSuppressions(http, groupId, emails));

  // Per-address deletes (one call per group and address, deduplicated), then global look-ups.
  const deletes = new Map<string, { groupId: number; email: string; keys: string[]; missingGroupOk: boolean }>();
  for (const d of groupDeletes) {
    const id = `${d.groupId}\u0000${d.email}`;
    const seen = deletes.get(id);
    if (seen) {
      seen.keys.push(d.key);
      seen.missingGroupOk &&= d.missingGroupOk;
    } else deletes.set(id, { groupId: d.groupId, email: d.email, keys: [d.key], missingGroupOk: d.missingGroupOk });
  }
  await pool([...deletes.values()], deps.concurrency, async (d) => {
    let o: Outcome = OK;
    try {
      await removeGroupSuppression(http, d.groupId, d.email);
    } catch (err) {
      // The group itself is gone: for an erasure, so is the suppression.
      o = statusOf(err) === 404 && d.missingGroupOk ? OK : outcomeOf(err, deps.now());
    }
    for (const k of d.keys) out.add(k, o);
  });
  await pool(globalChecks, deps.concurrency, async (g) => {
    try {
      if (await isGloballyUnsubscribed(http, g.email)) {
        const reason = g.purpose === ALL_PURPOSES ? GLOBAL_NEVER_LIFTED : `the address is globally unsubscribed in SendGrid, so the grant of "${g.purpose}" cannot take effect (group suppression removed). ${GLOBAL_NEVER_LIFTED}`;
        out.add(g.key, { status: 'failed', reason, code: 'SENDGRID_GLOBAL_UNSUBSCRIBE' });
      } else out.add(g.key, OK);
    } catch (err) {
      out.add(g.key, outcomeOf(err, deps.now()));
    }
  });

  // What SendGrid now says of an address that went through the global call: a global
  // unsubscribe reads back as (email, *) and every purpose denied, and suppressed (mapping.ts).
  // Returning it lets the engine store it, so the next pull's denial is recognised as the echo
  // of this push (a suppression pushed here must not come back as a fresh opt-out).
  const viaGlobal = new Set<string>();
  for (const keys of global.byEmail.values()) for (const k of keys) viaGlobal.add(k);
  return changes.map((c) => {
    const r = out.result(c.key);
    if (r.status !== 'ok' || c.op === 'erase' || !viaGlobal.has(c.key)) return r;
    const consent: Record<string, 'denied'> = { [scopeKey('email', ALL_PURPOSES)]: 'denied' };
    for (const p of purposes.purposes()) consent[scopeKey('email', p)] = 'denied';
    return { ...r, snapshot: { connectorId: c.connectorId, recordId: c.recordId, subject: c.subject, consent, suppressed: { email: true }, meta: c.meta } };
  });
}
