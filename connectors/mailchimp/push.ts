import type { PushResult } from '../../src/connectors/contract.js';
import { ALL_PURPOSES, scopeKey, type Change, type ConsentState, type RecordSnapshot } from '../../src/model/types.js';
import { bulkUpsert, emailKey, isForgotten, outcomeOfError, type BulkMember, type Outcome } from './bulk.js';
import type { McHttp } from './http.js';
import { parseRecordId } from './mapping.js';
import { deletePermanent, getMember, putMember, subscriberHash, type ListNatives } from './members.js';
import type { MailchimpSettings } from './settings.js';

/*
 * push(): up to limits.batchSize changes, grouped by list then by member.
 * - set_consent (email, *) denied and suppress -> status unsubscribed (Mailchimp's only
 *   settable "send nothing": `cleaned` cannot be set through the API);
 * - set_consent (email, P) -> the member's marketing_permissions / interests mapped to P;
 *   all of one member's changes go in one bulk item, all members of a list in
 *   ceil(members / 500) bulk calls;
 * - set_consent (email, *) granted -> never subscribed directly: with resubscribe 'pending' the
 *   member is set pending (a confirmation email) by PUT after a GET (a member found subscribed
 *   or pending is left alone, so a stale plan cannot downgrade or re-mail anyone); with
 *   'never' the change fails with the compliance reason;
 * - erase -> delete-permanent per member (404 = already erased).
 * Changes for bare addresses (suppressUnknownAddresses) go to every configured list: denials
 * and suppressions create the contact unsubscribed; purpose-level ones need an existing member
 * and are answered ok without a call (an address Mailchimp does not hold receives nothing).
 *
 * Snapshots (no suppress echo): a suppression is written as `unsubscribed`, which the next pull
 * reads as an explicit (email, *) denial (mapping.ts). Left to the engine, the stored snapshot
 * would be the old one plus `suppressed.email`, still granting (email, *), so that pulled
 * denial would be news and a hard bounce elsewhere would become an opt-out everywhere. So every
 * ok result for a member written `unsubscribed` (suppress, or set_consent (email, *) denied)
 * carries the snapshot of what Mailchimp now says: suppressed.email true, consent "email:*"
 * denied, plus the purposes this push wrote to the member; the engine stores it after the push
 * (completeOutbox) and treats the pulled denial as an echo. Limits, documented: the snapshot
 * holds only the scopes this push knows (the member's other purpose scopes are left out until the
 * next pull rewrites the record: push sees only Change.meta { listId, hash }, and reading the
 * member back would cost a call per member); a bare address (synthetic record, possibly several
 * lists) gets none; nor does a forgotten (permanently deleted) member.
 */

export const COMPLIANCE_REASON = 'Member In Compliance State: consentd does not resubscribe; set resubscribe: pending to send a confirmation email';

export interface PushDeps {
  http: McHttp;
  settings: MailchimpSettings;
  /** Per configured list: canonical purpose -> native ids. */
  natives: ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;
  /** Which native ids are marketing permissions / interests in a list (cached). */
  listNatives(listId: string): Promise<ListNatives>;
}

interface MemberWork {
  listId: string;
  email: string;
  hash: string;
  synthetic: boolean;
  wideDenied: boolean;
  wideGranted: boolean;
  /** purpose -> target */
  purposes: Map<string, 'granted' | 'denied'>;
  keys: string[];
  /** The pulled record the changes name (absent for a bare address). */
  record?: Pick<RecordSnapshot, 'connectorId' | 'recordId' | 'subject' | 'meta'>;
}

/** One change's share of work: a member in a list, or nothing to do. */
interface Target {
  listId: string;
  hash: string;
  synthetic: boolean;
}

export async function pushChanges(deps: PushDeps, changes: Change[]): Promise<PushResult[]> {
  const { settings } = deps;
  const configured = new Set(settings.lists.map((l) => l.id));
  /** key -> outcome per target (a change ok only if every target is). */
  const outcomes = new Map<string, Outcome[]>();
  const note = (key: string, o: Outcome): void => {
    const list = outcomes.get(key);
    if (list) list.push(o);
    else outcomes.set(key, [o]);
  };
  const work = new Map<string, MemberWork>();
  /** key -> snapshot of the member it was written to (see "Snapshots" above). */
  const snapshots = new Map<string, RecordSnapshot>();
  const erasures = new Map<string, { listId: string; hash: string; keys: string[] }>();

  for (const c of changes) {
    outcomes.set(c.key, []);
    if (c.channel !== 'email') {
      note(c.key, { status: 'failed', reason: `Mailchimp holds email only, not ${c.channel}`, code: 'UNSUPPORTED_CHANNEL' });
      continue;
    }
    const parsed = parseRecordId(c.recordId);
    let targets: Target[];
    if (parsed !== null) {
      if (!configured.has(parsed.listId)) {
        note(c.key, { status: 'failed', reason: `list ${parsed.listId} is not configured`, code: 'UNKNOWN_LIST' });
        continue;
      }
      targets = [{ ...parsed, synthetic: false }];
    } else {
      // A bare address (the planner's synthetic record): every list.
      targets = settings.lists.map((l) => ({ listId: l.id, hash: subscriberHash(c.subject), synthetic: true }));
    }

    for (const t of targets) {
      const mk = `${t.listId}:${t.hash}`;
      if (c.op === 'erase') {
        if (t.synthetic) continue; // never push the address of someone to be forgotten
        const e = erasures.get(mk) ?? { listId: t.listId, hash: t.hash, keys: [] };
        e.keys.push(c.key);
        erasures.set(mk, e);
        continue;
      }
      if (c.op === 'set_consent' && c.target === null) {
        note(c.key, { status: 'failed', reason: 'set_consent without a target', code: 'BAD_CHANGE' });
        continue;
      }
      const wide = c.op === 'suppress' || c.purpose === ALL_PURPOSES;
      if (t.synthetic && (!wide || c.target === 'granted')) continue; // nothing to hold it
      if (wide && c.op === 'set_consent' && c.target === 'granted' && settings.resubscribe === 'never') {
        note(c.key, { status: 'failed', reason: COMPLIANCE_REASON, code: 'COMPLIANCE_STATE' });
        continue;
      }
      if (!wide && (deps.natives.get(t.listId)?.get(c.purpose) ?? []).length === 0) continue; // this list cannot express P
      const w: MemberWork = work.get(mk) ?? { listId: t.listId, email: c.subject, hash: t.hash, synthetic: t.synthetic, wideDenied: false, wideGranted: false, purposes: new Map(), keys: [] };
      if (wide) {
        if (c.op === 'suppress' || c.target === 'denied') w.wideDenied = true;
        else w.wideGranted = true;
      } else if (c.target !== null) {
        // Two changes for one purpose cannot disagree in one plan; if they did, denial wins.
        if (w.purposes.get(c.purpose) !== 'denied') w.purposes.set(c.purpose, c.target);
      }
      w.keys.push(c.key);
      if (!t.synthetic && w.record === undefined) w.record = { connectorId: c.connectorId, recordId: c.recordId, subject: c.subject, meta: c.meta };
      work.set(mk, w);
    }
  }

  // Group members by list; grants of (email, *) take the GET + PUT path.
  const byList = new Map<string, MemberWork[]>();
  const regrants: MemberWork[] = [];
  for (const w of work.values()) {
    if (w.wideGranted && !w.wideDenied) {
      regrants.push(w);
      continue;
    }
    const l = byList.get(w.listId) ?? [];
    l.push(w);
    byList.set(w.listId, l);
  }

  const tasks: Promise<void>[] = [];

  for (const [listId, members] of byList) {
    tasks.push(
      (async () => {
        let kinds: ListNatives = { permissions: new Set(), interests: new Set() };
        try {
          // Only purpose changes need to know which native ids are permissions or interests.
          if (members.some((w) => w.purposes.size > 0)) kinds = await deps.listNatives(listId);
        } catch (err) {
          const o = outcomeOfError(err);
          for (const w of members) for (const k of w.keys) note(k, o);
          return;
        }
        const items: BulkMember[] = [];
        const itemOf = new Map<string, MemberWork>();
        for (const w of members) {
          const item = buildItem(deps, kinds, w);
          if ('failed' in item) {
            for (const k of w.keys) note(k, { status: 'failed', reason: item.failed, code: 'UNMAPPED_PURPOSE' });
            continue;
          }
          if (item.member === null) {
            for (const k of w.keys) note(k, { status: 'ok' });
            continue;
          }
          items.push(item.member);
          itemOf.set(emailKey(item.member.email_address), w);
        }
        if (items.length === 0) return;
        const answers = await bulkUpsert(deps.http, listId, items);
        for (const [email, w] of itemOf) {
          let o: Outcome = answers.get(email) ?? { status: 'retry', reason: 'no answer for this member' };
          // A permanently deleted address cannot come back: a denial there is already true.
          if (isForgotten(o) && w.wideDenied) o = { status: 'ok' };
          else if (o.status === 'ok') {
            const snap = unsubscribedSnapshot(w);
            if (snap) for (const k of w.keys) snapshots.set(k, snap);
          }
          for (const k of w.keys) note(k, o);
        }
      })(),
    );
  }

  for (const w of regrants) {
    tasks.push(
      (async () => {
        const o = await regrant(deps, w);
        for (const k of w.keys) note(k, o);
      })(),
    );
  }

  for (const e of erasures.values()) {
    tasks.push(
      (async () => {
        let o: Outcome;
        try {
          await deletePermanent(deps.http, e.listId, e.hash);
          o = { status: 'ok' };
        } catch (err) {
          o = outcomeOfError(err);
        }
        for (const k of e.keys) note(k, o);
      })(),
    );
  }

  await Promise.all(tasks);

  return changes.map((c): PushResult => {
    const all = outcomes.get(c.key) ?? [];
    const failed = all.find((o) => o.status === 'failed');
    if (failed) return { key: c.key, ...failed };
    const retry = all.find((o) => o.status === 'retry');
    if (retry) return { key: c.key, ...retry };
    const snapshot = snapshots.get(c.key);
    return snapshot ? { key: c.key, status: 'ok', snapshot } : { key: c.key, status: 'ok' };
  });
}

/**
 * What Mailchimp says of a pulled member just written `unsubscribed` (mapping.ts's reading of
 * that status), with the purposes this push wrote; null when the member was not set
 * unsubscribed or is a bare address.
 */
export function unsubscribedSnapshot(w: Pick<MemberWork, 'wideDenied' | 'purposes' | 'record'>): RecordSnapshot | null {
  if (!w.wideDenied || w.record === undefined) return null;
  const consent: Record<string, ConsentState> = { [scopeKey('email', ALL_PURPOSES)]: 'denied' };
  for (const [purpose, target] of w.purposes) consent[scopeKey('email', purpose)] = target;
  return { ...w.record, consent, suppressed: { email: true } };
}

/** The bulk item of one member; null member = nothing to write; failed = a purpose cannot be mapped. */
function buildItem(deps: PushDeps, kinds: ListNatives, w: MemberWork): { member: BulkMember | null } | { failed: string } {
  const item: BulkMember = { email_address: w.email };
  if (w.wideDenied) {
    item.status = 'unsubscribed';
    if (w.synthetic) item.status_if_new = 'unsubscribed';
  }
  const perms: Array<{ marketing_permission_id: string; enabled: boolean }> = [];
  const interests: Record<string, boolean> = {};
  for (const [purpose, target] of w.purposes) {
    for (const id of deps.natives.get(w.listId)?.get(purpose) ?? []) {
      if (kinds.permissions.has(id)) perms.push({ marketing_permission_id: id, enabled: target === 'granted' });
      else if (kinds.interests.has(id)) interests[id] = target === 'granted';
      else if (kinds.permissions.size === 0 && kinds.interests.size === 0) perms.push({ marketing_permission_id: id, enabled: target === 'granted' });
      else return { failed: `purpose ${purpose} maps to ${id}, which list ${w.listId} has neither as a marketing permission nor as an interest` };
    }
  }
  if (perms.length > 0) item.marketing_permissions = perms;
  if (Object.keys(interests).length > 0) item.interests = interests;
  if (item.status === undefined && perms.length === 0 && Object.keys(interests).length === 0) return { member: null };
  return { member: item };
}

/** (email, *) granted with resubscribe 'pending': GET, then PUT pending unless already subscribed / pending. */
async function regrant(deps: PushDeps, w: MemberWork): Promise<Outcome> {
  try {
    const m = await getMember(deps.http, w.listId, w.hash);
    const kinds = await deps.listNatives(w.listId);
    const item = buildItem(deps, kinds, { ...w, wideDenied: false });
    if ('failed' in item) return { status: 'failed', reason: item.failed, code: 'UNMAPPED_PURPOSE' };
    const body: Record<string, unknown> = {};
    if (item.member?.marketing_permissions) body['marketing_permissions'] = item.member.marketing_permissions;
    if (item.member?.interests) body['interests'] = item.member.interests;
    if (m === null) body['status_if_new'] = 'pending';
    else if (m.status !== 'subscribed' && m.status !== 'pending') body['status'] = 'pending';
    if (Object.keys(body).length === 0) return { status: 'ok' };
    await putMember(deps.http, w.listId, m?.email_address ?? w.email, body);
    return { status: 'ok' };
  } catch (err) {
    const o = outcomeOfError(err);
    if (o.status === 'failed' && /compliance state/i.test(o.reason)) return { ...o, code: 'COMPLIANCE_STATE' };
    return o;
  }
}
