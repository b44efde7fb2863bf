import { createHash, timingSafeEqual } from 'node:crypto';
import { WebhookRejection } from '../../src/connectors/contract.js';
import type { ConnectorWebhook, WebhookEvent, WebhookRequest, WebhookTranslation } from '../../src/connectors/contract.js';
import { normalizeEmail, stableHash } from '../../src/model/email.js';
import { ALL_PURPOSES, type ObservationInput, type RecordSnapshot } from '../../src/model/types.js';
import type { McHttp } from './http.js';
import { mapMember, recordIdOf, type ListMapping } from './mapping.js';
import { getMember, subscriberHash } from './members.js';

/*
 * Mailchimp list webhooks. No signature exists: the URL carries a secret token (`?token=` or
 * the last path segment), compared in constant time. Mailchimp validates a new webhook URL
 * with a GET, answered with no events (the daemon says 200). POSTs are form-encoded and parsed
 * from the raw bytes. fired_at ("YYYY-MM-DD HH:MM:SS") is read as UTC: Mailchimp documents no
 * zone [unverified]; the sandbox sends UTC.
 *
 * Event ids: Mailchimp sends none, so the id is a hash of (type, fired_at, list_id, address,
 * old address, reason, action): a retried delivery of the same event gets the same id and is
 * deduped; two events of one kind for one address within one second collapse (harmless: the
 * same statement).
 *
 * Translation:
 * - unsubscribe, action unsub: reason abuse -> complaint suppression; otherwise (email, *)
 *   denied explicit, statedAt fired_at. action delete (archived or deleted by an admin, or our
 *   own delete-permanent echo) says nothing about consent and is not an erasure request
 *   (Mailchimp does not tell an archive from a GDPR deletion): nothing.
 * - cleaned: reason abuse -> complaint; otherwise hard_bounce suppression.
 * - subscribe: (email, *) granted; explicit (statedAt fired_at, evidence "mailchimp subscribe
 *   webhook") when the event carries an opt-in IP (a form / double opt-in confirmation), else
 *   implicit (an admin add or import fires the same event without one).
 * - profile: nothing (marketing permissions are not in the payload; the next incremental pull
 *   reads them). campaign: ignored (no events).
 * - upemail: the member moved to a new address. consentd cannot read its store here, so the
 *   member is read again (GET at the new address): its record snapshot is returned, and if it
 *   is unsubscribed / cleaned, the matching denial / suppression for the new address. Carrying
 *   the old address's denials over to the new one is the engine's job (see the lead's note).
 */

export const WEBHOOK_TYPES = ['subscribe', 'unsubscribe', 'profile', 'cleaned', 'upemail', 'campaign'] as const;
export type McWebhookType = (typeof WEBHOOK_TYPES)[number];

export interface McWebhookPayload {
  type: McWebhookType;
  firedAt: string;
  listId: string;
  /** Normalized address the event is about (the new one for upemail). */
  email: string;
  oldEmail: string | null;
  reason: string | null;
  action: string | null;
  ipOpt: string | null;
}

const sha = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** Constant-time token comparison (equal-length digests). */
export function tokenMatches(presented: string | null, expected: string): boolean {
  if (presented === null) return false;
  return timingSafeEqual(sha(presented), sha(expected));
}

/** The token a request carries: `?token=` first, else the last path segment. */
export function presentedToken(url: string): string | null {
  let u: URL;
  try {
    u = new URL(url, 'http://consentd.invalid');
  } catch {
    return null;
  }
  const q = u.searchParams.get('token');
  if (q !== null) return q;
  const segs = u.pathname.split('/').filter((s) => s !== '');
  const last = segs[segs.length - 1];
  return last === undefined ? null : decodeURIComponent(last);
}

/** "2024-05-01 12:34:56" (UTC) -> ISO; null if absent or unparseable. */
export function firedAtToIso(s: string | null): string | null {
  if (s === null) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(s.trim());
  if (!m) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]));
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

const isType = (t: string | null): t is McWebhookType => t !== null && (WEBHOOK_TYPES as readonly string[]).includes(t);

export interface WebhookDeps {
  connectorId: string;
  token: string;
  lists: ReadonlyMap<string, ListMapping>;
  http: McHttp;
}

export function createWebhook(deps: WebhookDeps): ConnectorWebhook {
  return {
    verify(req: WebhookRequest): Promise<WebhookEvent[]> {
      return Promise.resolve(verify(deps, req));
    },
    toObservations(events: WebhookEvent[]): Promise<WebhookTranslation> {
      return toObservations(deps, events);
    },
  };
}

function verify(deps: WebhookDeps, req: WebhookRequest): WebhookEvent[] {
  if (!tokenMatches(presentedToken(req.url), deps.token)) throw new WebhookRejection('unauthorized', 'webhook token missing or wrong');
  const method = req.method.toUpperCase();
  if (method === 'GET' || method === 'HEAD') return []; // Mailchimp's URL validation
  if (method !== 'POST') throw new WebhookRejection('malformed', `method ${method} not accepted`);
  const text = req.rawBody.toString('utf8');
  if (text.trim() === '') throw new WebhookRejection('malformed', 'empty body');
  const form = new URLSearchParams(text);
  const type = form.get('type');
  if (!isType(type)) throw new WebhookRejection('malformed', `unknown webhook type ${JSON.stringify(type)}`);
  const firedAtRaw = form.get('fired_at');
  const firedAt = firedAtToIso(firedAtRaw);
  if (firedAt === null) throw new WebhookRejection('malformed', `fired_at ${JSON.stringify(firedAtRaw)} is not "YYYY-MM-DD HH:MM:SS"`);
  const listId = form.get('data[list_id]') ?? '';
  if (type === 'campaign') return []; // campaign sent: nothing about a person
  if (listId === '') throw new WebhookRejection('malformed', 'data[list_id] missing');
  if (!deps.lists.has(listId)) return []; // a list consentd does not manage

  const rawEmail = type === 'upemail' ? form.get('data[new_email]') : form.get('data[email]');
  const norm = normalizeEmail(rawEmail);
  if (!norm.ok) throw new WebhookRejection('malformed', `${type === 'upemail' ? 'data[new_email]' : 'data[email]'}: ${norm.reason}`);
  let oldEmail: string | null = null;
  if (type === 'upemail') {
    const o = normalizeEmail(form.get('data[old_email]'));
    if (!o.ok) throw new WebhookRejection('malformed', `data[old_email]: ${o.reason}`);
    oldEmail = o.email;
  }
  const reason = form.get('data[reason]');
  const action = form.get('data[action]');
  const ipOpt = form.get('data[ip_opt]');
  const payload: McWebhookPayload = {
    type,
    firedAt,
    listId,
    email: norm.email,
    oldEmail,
    reason: reason === '' ? null : reason,
    action: action === '' ? null : action,
    ipOpt: ipOpt === null || ipOpt === '' ? null : ipOpt,
  };
  const id = `mc-${stableHash('mailchimp-webhook', type, firedAtRaw, listId, norm.email, oldEmail, payload.reason, payload.action)}`;
  return [{ id, type, occurredAt: firedAt, payload }];
}

function isPayload(p: unknown): p is McWebhookPayload {
  if (typeof p !== 'object' || p === null) return false;
  const o = p as Record<string, unknown>;
  return isType(typeof o['type'] === 'string' ? o['type'] : null) && typeof o['email'] === 'string' && typeof o['listId'] === 'string' && typeof o['firedAt'] === 'string';
}

async function toObservations(deps: WebhookDeps, events: WebhookEvent[]): Promise<WebhookTranslation> {
  const observations: ObservationInput[] = [];
  const records: RecordSnapshot[] = [];
  const addressChanges: NonNullable<WebhookTranslation['addressChanges']> = [];
  for (const ev of events) {
    if (!isPayload(ev.payload)) throw new WebhookRejection('malformed', `event ${ev.id} has no Mailchimp payload`);
    const p = ev.payload;
    const list = deps.lists.get(p.listId);
    if (!list) continue;
    const base = {
      subject: p.email,
      source: deps.connectorId,
      // The member id is the md5 of the address: naming the record lets the engine recognise
      // the echo of our own push (its state equals the record's stored snapshot).
      recordId: recordIdOf(p.listId, subscriberHash(p.email)),
      channel: 'email' as const,
      purpose: ALL_PURPOSES,
      statedAt: p.firedAt,
      how: 'webhook' as const,
      reference: ev.id,
    };
    const abuse = p.reason === 'abuse';
    switch (p.type) {
      case 'unsubscribe':
        if (p.action === 'delete') break;
        if (abuse) observations.push({ ...base, kind: 'suppression', state: 'denied', strength: 'explicit', evidence: 'mailchimp unsubscribe webhook (abuse)', reason: 'complaint' });
        else observations.push({ ...base, kind: 'consent', state: 'denied', strength: 'explicit', evidence: `mailchimp unsubscribe webhook (${p.reason ?? 'manual'})`, reason: null });
        break;
      case 'cleaned':
        if (abuse) observations.push({ ...base, kind: 'suppression', state: 'denied', strength: 'explicit', evidence: 'mailchimp cleaned webhook (abuse)', reason: 'complaint' });
        else observations.push({ ...base, kind: 'suppression', state: 'unknown', strength: 'explicit', evidence: `mailchimp cleaned webhook (${p.reason ?? 'hard'})`, reason: 'hard_bounce' });
        break;
      case 'subscribe':
        observations.push({
          ...base,
          kind: 'consent',
          state: 'granted',
          strength: p.ipOpt !== null ? 'explicit' : 'implicit',
          evidence: p.ipOpt !== null ? `mailchimp subscribe webhook, opt-in ip ${p.ipOpt}` : 'mailchimp subscribe webhook without opt-in ip (admin add or import)',
          reason: null,
        });
        break;
      case 'upemail': {
        const from = p.oldEmail === null ? null : normalizeEmail(p.oldEmail);
        if (from?.ok === true && from.email !== p.email) addressChanges.push({ from: from.email, to: p.email, reference: ev.id });
        const m = await getMember(deps.http, p.listId, p.email);
        if (m === null) break;
        const mapped = mapMember(deps.connectorId, list, m);
        if (mapped.record) records.push(mapped.record);
        if (m.status === 'unsubscribed' || m.status === 'cleaned') {
          // Only the "send nothing" statements: a grant is not inferred from an address change.
          for (const o of mapped.observations) if (o.purpose === ALL_PURPOSES && o.state !== 'granted') observations.push({ ...o, how: 'webhook', reference: ev.id, evidence: `${o.evidence ?? ''} (address changed from ${p.oldEmail ?? '?'})` });
        }
        break;
      }
      default:
        break;
    }
  }
  return { observations, ...(records.length > 0 ? { records } : {}), ...(addressChanges.length > 0 ? { addressChanges } : {}) };
}
