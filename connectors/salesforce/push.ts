import type { PushResult } from '../../src/connectors/contract.js';
import { ALL_PURPOSES, type Change } from '../../src/model/types.js';
import { classifyError, isRetryableCode } from './client.js';
import { CHANNEL_CONTACT_POINT, CONSENTD_SOURCE, personType, type PersonType } from './mapping.js';
import type { PullDeps } from './pull.js';

/**
 * Push: changes grouped by record, so one record update carries all its field changes; one
 * sObject Collections call per <= 200 records (`PATCH /composite/sobjects`, allOrNone false),
 * each SaveResult mapped back to the changes of its record. A push holds up to
 * limits.batchSize changes (an email opt-out of MAX_RETRIEVE records: see index.ts) and splits
 * them internally: per push, one retrieve per object type and <= 2000 records needing an
 * Individual, then ceil(n / 200) creates of Individuals, updates of records and creates of
 * ContactPointTypeConsents. No call is made per change.
 *
 * - (email|phone|post, *) denied -> HasOptedOutOfEmail | DoNotCall | HasOptedOutOfFax = true.
 * - (channel, *) granted (privacy features only) -> the flag = false, plus an OptIn
 *   ContactPointTypeConsent without purpose, so a later pull reads the grant back (convergence).
 * - (email, purpose) -> a ContactPointTypeConsent OptIn / OptOut for the mapped DataUsePurpose.
 *   Consents hang on the record's Individual: one is created (and linked via IndividualId) when
 *   the record has none. Each push writes a new consent record (history kept; the newest wins).
 * - erase -> `DELETE /composite/sobjects?ids=` of the record and its Individual (an Individual
 *   with ShouldForget is honoured by deleting it and the records; nothing is left to flag).
 * Per-record UNABLE_TO_LOCK_ROW / ALL_OR_NONE_OPERATION_ROLLED_BACK / 5xx codes retry; other
 * codes fail with Salesforce's message. A thrown call (5xx, timeout, reset, API reserve) makes
 * every change depending on that call retry. Writing the same value twice is harmless.
 */

export const MAX_COLLECTION = 200;
/** Ids one sObject Collections retrieve (`POST /composite/sobjects/{Type}`) reads. */
export const MAX_RETRIEVE = 2000;
const FLAG: Readonly<Record<string, string>> = { email: 'HasOptedOutOfEmail', phone: 'DoNotCall', post: 'HasOptedOutOfFax' };
/** Salesforce answers "already gone" with these; for an erase that is success. */
const GONE = new Set(['ENTITY_IS_DELETED', 'INVALID_CROSS_REFERENCE_KEY']);

export interface PushDeps extends PullDeps {
  /** Canonical purpose -> DataUsePurpose Id (refresh: re-read the org's purposes). */
  purposeIds(refresh: boolean): Promise<Map<string, string>>;
  /**
   * Individuals this process created whose link (record.IndividualId) is not confirmed yet:
   * record id -> Individual id. A retried push reuses them instead of creating another.
   */
  unlinked: Map<string, string>;
}

interface SaveError {
  statusCode?: string;
  errorCode?: string;
  message?: string;
}
interface SaveResult {
  id?: string;
  success: boolean;
  errors?: SaveError[];
}

type Outcome = { status: 'ok' } | { status: 'retry'; reason: string; retryAfterMs?: number } | { status: 'failed'; reason: string; code?: string };
const RANK = { ok: 0, retry: 1, failed: 2 } as const;

class Outcomes {
  private readonly byKey = new Map<string, Outcome>();
  mark(keys: Iterable<string>, o: Outcome): void {
    for (const k of keys) {
      const prev = this.byKey.get(k);
      if (!prev || RANK[o.status] > RANK[prev.status]) this.byKey.set(k, o);
    }
  }
  failed(key: string): boolean {
    const o = this.byKey.get(key);
    return o !== undefined && o.status !== 'ok';
  }
  results(changes: readonly Change[]): PushResult[] {
    return changes.map((c) => {
      const o = this.byKey.get(c.key) ?? { status: 'ok' };
      return { key: c.key, ...o } as PushResult;
    });
  }
}

function saveOutcome(r: SaveResult | undefined, gone = false): Outcome {
  if (!r) return { status: 'retry', reason: 'Salesforce returned no result for this record' };
  if (r.success) return { status: 'ok' };
  const e = r.errors?.[0];
  // The REST API says statusCode; jsforce's typings (the SOAP name) say errorCode.
  const code = e?.statusCode ?? e?.errorCode;
  const reason = `${code ?? 'ERROR'}: ${e?.message ?? 'unknown error'}`;
  if (gone && code !== undefined && GONE.has(code)) return { status: 'ok' };
  if (isRetryableCode(code)) return { status: 'retry', reason };
  return code === undefined ? { status: 'failed', reason } : { status: 'failed', reason, code };
}

function thrownOutcome(err: unknown): Outcome {
  const c = classifyError(err);
  if (c.retry) return c.retryAfterMs === undefined ? { status: 'retry', reason: c.reason } : { status: 'retry', reason: c.reason, retryAfterMs: c.retryAfterMs };
  return c.code === undefined ? { status: 'failed', reason: c.reason } : { status: 'failed', reason: c.reason, code: c.code };
}

interface ConsentWrite {
  contactPointType: string;
  purposeId: string | null;
  label: string;
  status: 'OptIn' | 'OptOut';
  decidedBy: string | null;
  keys: string[];
}

interface RecordPlan {
  id: string;
  type: PersonType;
  individualId: string | null;
  fields: Record<string, unknown>;
  consents: ConsentWrite[];
  keys: Set<string>;
}

const consentKeys = (p: RecordPlan): string[] => p.consents.flatMap((w) => w.keys);

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

const metaString = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

export async function pushChanges(deps: PushDeps, changes: readonly Change[]): Promise<PushResult[]> {
  const out = new Outcomes();
  // Unknown (the detection call failed): changes that need the privacy objects retry.
  let privacyError: unknown = null;
  const privacy = changes.some((c) => c.op === 'set_consent')
    ? await deps.privacy().catch((err: unknown) => {
        privacyError = err;
        return false;
      })
    : false;
  let purposeError: unknown = null;
  const lookup = (refresh: boolean): Promise<Map<string, string>> =>
    deps.purposeIds(refresh).catch((err: unknown) => {
      purposeError = err;
      return new Map<string, string>();
    });
  const plans = new Map<string, RecordPlan>();
  const erasures: Change[] = [];
  let purposeIds: Map<string, string> | null = null;
  let refreshed = false;

  for (const c of changes) {
    if (c.op === 'erase') {
      erasures.push(c);
      continue;
    }
    if (c.op === 'suppress') {
      out.mark([c.key], { status: 'failed', reason: 'Salesforce bounce fields are system fields: consentd reads them and never writes suppressions', code: 'SF_UNSUPPORTED' });
      continue;
    }
    const flag = FLAG[c.channel];
    const isFlag = c.purpose === ALL_PURPOSES && flag !== undefined && (c.channel !== 'post' || deps.settings.faxChannel === 'post');
    const isPurpose = c.purpose !== ALL_PURPOSES && c.channel === 'email' && privacy;
    if (privacyError !== null && (c.purpose !== ALL_PURPOSES || c.target === 'granted')) {
      out.mark([c.key], thrownOutcome(privacyError));
      continue;
    }
    if (c.target === null || (!isFlag && !isPurpose)) {
      out.mark([c.key], { status: 'failed', reason: `Salesforce connector cannot express (${c.channel}, ${c.purpose})${c.purpose !== ALL_PURPOSES && !privacy ? ': privacy features (Individual, ContactPointTypeConsent) are off' : ''}`, code: 'SF_UNSUPPORTED' });
      continue;
    }
    if (c.target === 'granted' && !privacy) {
      out.mark([c.key], { status: 'failed', reason: 'a grant needs a ContactPointTypeConsent: privacy features are off', code: 'SF_UNSUPPORTED' });
      continue;
    }
    let purposeId: string | null = null;
    if (isPurpose) {
      purposeIds ??= await lookup(false);
      if (!purposeIds.has(c.purpose) && purposeError === null && !refreshed) {
        refreshed = true;
        const fresh = await lookup(true);
        if (purposeError === null) purposeIds = fresh;
      }
      const id = purposeIds.get(c.purpose);
      if (id === undefined && purposeError !== null) {
        out.mark([c.key], thrownOutcome(purposeError));
        continue;
      }
      if (id === undefined) {
        out.mark([c.key], { status: 'failed', reason: `no DataUsePurpose named ${deps.purposes.natives(c.purpose).map((n) => JSON.stringify(n)).join(' or ') || '(none mapped)'} in the org for purpose "${c.purpose}"`, code: 'SF_NO_PURPOSE' });
        continue;
      }
      purposeId = id;
    }
    let plan = plans.get(c.recordId);
    if (!plan) {
      const type = c.meta['type'] === 'Lead' || c.meta['type'] === 'Contact' ? c.meta['type'] : personType({ Id: c.recordId });
      plan = { id: c.recordId, type, individualId: metaString(c.meta['individualId']), fields: {}, consents: [], keys: new Set() };
      plans.set(c.recordId, plan);
    }
    plan.keys.add(c.key);
    if (isFlag && flag) plan.fields[flag] = c.target === 'denied';
    if (isPurpose || c.target === 'granted') {
      plan.consents.push({
        contactPointType: CHANNEL_CONTACT_POINT[c.channel] ?? 'Email',
        purposeId,
        label: c.purpose === ALL_PURPOSES ? (CHANNEL_CONTACT_POINT[c.channel] ?? 'Email') : (deps.purposes.natives(c.purpose)[0] ?? c.purpose),
        status: c.target === 'granted' ? 'OptIn' : 'OptOut',
        decidedBy: c.decidedBy,
        keys: [c.key],
      });
    }
  }

  const live = (p: RecordPlan): boolean => [...p.keys].some((k) => !out.failed(k));
  await ensureIndividuals(deps, [...plans.values()].filter((p) => p.consents.length > 0 && p.individualId === null), out);
  await updateRecords(deps, [...plans.values()].filter((p) => Object.keys(p.fields).length > 0 && live(p)), out);
  await createConsents(deps, [...plans.values()].filter((p) => p.consents.length > 0 && p.individualId !== null && live(p)), out);
  await eraseRecords(deps, erasures, out);
  return out.results(changes);
}

/** Finds (re-reading the record) or creates the Individual each plan's consents hang on. */
async function ensureIndividuals(deps: PushDeps, plans: RecordPlan[], out: Outcomes): Promise<void> {
  if (plans.length === 0) return;
  const names = new Map<string, { FirstName?: string | null; LastName?: string | null }>();
  for (const type of ['Contact', 'Lead'] as const) {
    const mine = plans.filter((p) => p.type === type);
    for (const chunk of chunks(mine, MAX_RETRIEVE)) {
      try {
        const rows = await deps.client.request<({ Id: string; FirstName?: string | null; LastName?: string | null; IndividualId?: string | null } | null)[]>({
          method: 'POST',
          url: `/composite/sobjects/${type}`,
          body: JSON.stringify({ ids: chunk.map((p) => p.id), fields: ['Id', 'FirstName', 'LastName', 'IndividualId'] }),
          headers: { 'content-type': 'application/json' },
        });
        chunk.forEach((p, i) => {
          const row = rows[i];
          if (!row) out.mark(consentKeys(p), { status: 'failed', reason: `${type} ${p.id} not found (deleted?)`, code: 'ENTITY_IS_DELETED' });
          else if (row.IndividualId) p.individualId = row.IndividualId;
          else names.set(p.id, row);
        });
      } catch (err) {
        out.mark(chunk.flatMap(consentKeys), thrownOutcome(err));
      }
    }
  }
  for (const p of plans) {
    const pending = p.individualId === null && names.has(p.id) ? deps.unlinked.get(p.id) : undefined;
    if (pending !== undefined) {
      p.individualId = pending;
      p.fields['IndividualId'] = pending;
    }
  }
  const toCreate = plans.filter((p) => p.individualId === null && names.has(p.id));
  for (const chunk of chunks(toCreate, MAX_COLLECTION)) {
    try {
      const results = await deps.client.request<SaveResult[]>({
        method: 'POST',
        url: '/composite/sobjects',
        body: JSON.stringify({
          allOrNone: false,
          records: chunk.map((p) => {
            const n = names.get(p.id);
            return { attributes: { type: 'Individual' }, FirstName: n?.FirstName ?? null, LastName: n?.LastName || 'Unknown' };
          }),
        }),
        headers: { 'content-type': 'application/json' },
      });
      chunk.forEach((p, i) => {
        const r = results[i];
        const o = saveOutcome(r);
        if (o.status === 'ok' && r?.id) {
          deps.unlinked.set(p.id, r.id);
          p.individualId = r.id;
          p.fields['IndividualId'] = r.id;
        } else out.mark(consentKeys(p), o.status === 'ok' ? { status: 'retry', reason: 'Individual created without an id' } : o);
      });
    } catch (err) {
      out.mark(chunk.flatMap(consentKeys), thrownOutcome(err));
    }
  }
}

async function updateRecords(deps: PushDeps, plans: RecordPlan[], out: Outcomes): Promise<void> {
  for (const chunk of chunks(plans, MAX_COLLECTION)) {
    try {
      const results = await deps.client.request<SaveResult[]>({
        method: 'PATCH',
        url: '/composite/sobjects',
        body: JSON.stringify({ allOrNone: false, records: chunk.map((p) => ({ attributes: { type: p.type }, id: p.id, ...p.fields })) }),
        headers: { 'content-type': 'application/json' },
      });
      chunk.forEach((p, i) => {
        const o = saveOutcome(results[i]);
        if (o.status === 'ok' && p.fields['IndividualId'] !== undefined) deps.unlinked.delete(p.id);
        out.mark(p.keys, o);
      });
    } catch (err) {
      out.mark(chunk.flatMap((p) => [...p.keys]), thrownOutcome(err));
    }
  }
}

async function createConsents(deps: PushDeps, plans: RecordPlan[], out: Outcomes): Promise<void> {
  const at = new Date(deps.now()).toISOString();
  const writes = plans.flatMap((p) =>
    p.consents.filter((w) => w.keys.some((k) => !out.failed(k))).map((w) => ({
      w,
      record: {
        attributes: { type: 'ContactPointTypeConsent' },
        Name: `${w.label} consent (consentd)`.slice(0, 255),
        PartyId: p.individualId,
        ContactPointType: w.contactPointType,
        PrivacyConsentStatus: w.status,
        DataUsePurposeId: w.purposeId,
        CaptureDate: at,
        CaptureSource: `${CONSENTD_SOURCE}${w.decidedBy ? ` (observation ${w.decidedBy})` : ''}`.slice(0, 255),
        EffectiveFrom: at,
      },
    })),
  );
  for (const chunk of chunks(writes, MAX_COLLECTION)) {
    try {
      const results = await deps.client.request<SaveResult[]>({
        method: 'POST',
        url: '/composite/sobjects',
        body: JSON.stringify({ allOrNone: false, records: chunk.map((x) => x.record) }),
        headers: { 'content-type': 'application/json' },
      });
      chunk.forEach((x, i) => out.mark(x.w.keys, saveOutcome(results[i])));
    } catch (err) {
      out.mark(chunk.flatMap((x) => x.w.keys), thrownOutcome(err));
    }
  }
}

/** Deletes each record and its Individual; "already deleted" counts as done. */
async function eraseRecords(deps: PushDeps, erasures: Change[], out: Outcomes): Promise<void> {
  const items: { id: string; keys: string[]; individual: boolean }[] = [];
  const index = new Map<string, { id: string; keys: string[]; individual: boolean }>();
  const add = (id: string, key: string, individual: boolean): void => {
    const prev = index.get(id);
    if (prev) prev.keys.push(key);
    else {
      const item = { id, keys: [key], individual };
      index.set(id, item);
      items.push(item);
    }
  };
  for (const c of erasures) {
    if (!/^[0-9A-Za-z]{15,18}$/.test(c.recordId)) {
      out.mark([c.key], { status: 'failed', reason: `not a Salesforce id: ${c.recordId}`, code: 'MALFORMED_ID' });
      continue;
    }
    add(c.recordId, c.key, false);
    const ind = metaString(c.meta['individualId']);
    if (ind !== null && /^[0-9A-Za-z]{15,18}$/.test(ind)) add(ind, c.key, true);
  }
  for (const chunk of chunks(items, MAX_COLLECTION)) {
    try {
      const results = await deps.client.request<SaveResult[]>({ method: 'DELETE', url: `/composite/sobjects?ids=${chunk.map((x) => x.id).join(',')}&allOrNone=false` });
      chunk.forEach((x, i) => {
        const o = saveOutcome(results[i], true);
        out.mark(x.keys, o.status === 'failed' && x.individual ? { ...o, reason: `record deleted, but its Individual ${x.id} was not: ${o.reason}` } : o);
      });
    } catch (err) {
      out.mark(chunk.flatMap((x) => x.keys), thrownOutcome(err));
    }
  }
}
