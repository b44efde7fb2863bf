import { createHmac, timingSafeEqual } from 'node:crypto';
import { WebhookRejection } from '../../src/connectors/contract.js';
import type { ConnectorWebhook, KnownRecords, WebhookEvent, WebhookRequest, WebhookTranslation } from '../../src/connectors/contract.js';
import { normalizeEmail } from '../../src/model/email.js';
import { ALL_PURPOSES, type ObservationInput, type RecordSnapshot } from '../../src/model/types.js';
import { BATCH_MAX, type HubSpotApi, type SdkContact } from './client.js';
import type { CommPrefs } from './commprefs.js';
import { BOUNCE_PROPS, contactProperties, evidenceOf, mapContact, OPTOUT, CONSENT_BASES, type SubscriptionMap } from './mapping.js';

/*
 * Webhooks v3. verify(): X-HubSpot-Signature-v3 = base64(HMAC-SHA256(appSecret, method + uri +
 * rawBody + timestamp)) over the raw bytes, compared in constant time; the timestamp
 * (X-HubSpot-Request-Timestamp, ms) must be within 5 minutes; the body must be a JSON array of
 * at most 100 events. toObservations(): property changes carry only the contact id. A contact
 * consentd has stored is named from its store (`known`); the others are resolved with one batch
 * read per delivery (email + consent properties), plus one v4 status read for the legal basis of
 * resubscriptions (which always read the contact).
 *
 * contact.privacyDeletion arrives after HubSpot deleted the contact: its email usually cannot be
 * read any more. Such erasures are returned in `erasuresByRecord` (record id + event): the
 * engine must look the record up in its own store (records.connector_id = this connector,
 * record_id = objectId -> subject) and record the erasure for that subject.
 */

export const MAX_EVENTS = 100;
export const MAX_SKEW_MS = 5 * 60_000;

export interface HubSpotEventBody {
  eventId: number | string;
  subscriptionType: string;
  objectId: number | string;
  occurredAt?: number;
  propertyName?: string;
  propertyValue?: string;
  changeSource?: string;
  sourceId?: string;
  attemptNumber?: number;
  [k: string]: unknown;
}

/** An event whose subject could not be resolved from HubSpot (the contact is gone). */
/** HubSpot's translation always says which erasures it could only name by record. */
export interface HubSpotWebhookTranslation extends WebhookTranslation {
  erasuresByRecord: NonNullable<WebhookTranslation['erasuresByRecord']>;
}

/** Characters HubSpot decodes in the URI before signing (its v3 documentation). */
const DECODED: ReadonlyArray<[RegExp, string]> = [
  [/%3A/gi, ':'],
  [/%2F/gi, '/'],
  [/%3F/gi, '?'],
  [/%40/gi, '@'],
  [/%21/gi, '!'],
  [/%24/gi, '$'],
  [/%27/gi, "'"],
  [/%28/gi, '('],
  [/%29/gi, ')'],
  [/%2A/gi, '*'],
  [/%2C/gi, ','],
  [/%3B/gi, ';'],
];

export function signatureV3(appSecret: string, method: string, uri: string, rawBody: Buffer, timestamp: string): string {
  return createHmac('sha256', appSecret).update(`${method.toUpperCase()}${uri}`).update(rawBody).update(timestamp).digest('base64');
}

function header(req: WebhookRequest, name: string): string | undefined {
  const v = req.headers[name] ?? Object.entries(req.headers).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(v) ? v[0] : v;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  // Unequal lengths: still compare something of equal length so timing says nothing.
  if (x.length !== y.length) return timingSafeEqual(y, y) && false;
  return timingSafeEqual(x, y);
}

export function verifyHubSpotRequest(req: WebhookRequest, o: { appSecret: string | undefined; webhookUrl: string | undefined; now?: number }): WebhookEvent[] {
  if (o.appSecret === undefined) throw new WebhookRejection('unauthorized', 'hubspot webhooks need settings.appSecret');
  const signature = header(req, 'x-hubspot-signature-v3');
  const timestamp = header(req, 'x-hubspot-request-timestamp');
  if (signature === undefined || timestamp === undefined) throw new WebhookRejection('bad_signature', 'missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp');
  if (!/^\d{1,15}$/.test(timestamp.trim())) throw new WebhookRejection('bad_signature', 'X-HubSpot-Request-Timestamp is not a number of milliseconds');
  const ts = Number(timestamp.trim());
  const now = o.now ?? Date.now();
  if (Math.abs(now - ts) > MAX_SKEW_MS) throw new WebhookRejection('stale_timestamp', `request timestamp is ${Math.round((now - ts) / 1000)} s away from now (limit 300 s)`);
  const uri = o.webhookUrl ?? req.url;
  const decoded = DECODED.reduce((u, [re, ch]) => u.replace(re, ch), uri);
  const candidates = decoded === uri ? [uri] : [uri, decoded];
  const ok = candidates.map((u) => sameSecret(signatureV3(o.appSecret as string, req.method, u, req.rawBody, timestamp.trim()), signature.trim())).some(Boolean);
  if (!ok) throw new WebhookRejection('bad_signature', 'X-HubSpot-Signature-v3 does not match');

  let body: unknown;
  try {
    body = JSON.parse(req.rawBody.toString('utf8'));
  } catch {
    throw new WebhookRejection('malformed', 'body is not JSON');
  }
  if (!Array.isArray(body)) throw new WebhookRejection('malformed', 'body is not a JSON array of events');
  if (body.length > MAX_EVENTS) throw new WebhookRejection('malformed', `body has ${body.length} events (HubSpot sends at most ${MAX_EVENTS})`);
  return body.map((e, i): WebhookEvent => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new WebhookRejection('malformed', `event ${i} is not an object`);
    const ev = e as Record<string, unknown>;
    const id = ev['eventId'];
    if ((typeof id !== 'number' && typeof id !== 'string') || typeof ev['subscriptionType'] !== 'string') throw new WebhookRejection('malformed', `event ${i} has no eventId or subscriptionType`);
    const at = typeof ev['occurredAt'] === 'number' ? new Date(ev['occurredAt']) : null;
    return { id: String(id), type: ev['subscriptionType'], occurredAt: at && !Number.isNaN(at.getTime()) ? at.toISOString() : null, payload: ev };
  });
}

export interface WebhookDeps {
  api: HubSpotApi;
  prefs: CommPrefs;
  connectorId: string;
  subscriptions: SubscriptionMap;
  appSecret: string | undefined;
  webhookUrl: string | undefined;
  /** Our own app's id: its changes are echoes of our pushes (see settings.ownAppId). */
  ownAppId?: string | undefined;
}

const SUB_PREFIX = `${OPTOUT}_`;

/** Does this property change say something about consent or deliverability? */
function relevant(deps: WebhookDeps, prop: string | undefined): boolean {
  if (prop === undefined) return false;
  if (prop === OPTOUT || (BOUNCE_PROPS as readonly string[]).includes(prop)) return true;
  return prop.startsWith(SUB_PREFIX) && deps.subscriptions.has(prop.slice(SUB_PREFIX.length));
}

function payloadOf(e: WebhookEvent): HubSpotEventBody {
  return e.payload as HubSpotEventBody;
}

/**
 * Can this event be turned into an observation without reading the contact, once its person is
 * known? Everything but a resubscription (whose legal basis only the v4 status read tells).
 */
function settledWithoutRead(e: WebhookEvent): boolean {
  if (e.type !== 'contact.propertyChange') return false;
  const p = payloadOf(e);
  return !((p.propertyName ?? '').startsWith(SUB_PREFIX) && p.propertyValue === 'false');
}

export async function translate(deps: WebhookDeps, events: WebhookEvent[], known?: KnownRecords): Promise<HubSpotWebhookTranslation> {
  const ours = (e: WebhookEvent): boolean => deps.ownAppId !== undefined && String(payloadOf(e).sourceId ?? '') === deps.ownAppId;
  const wanted = events.filter(
    (e) => ((e.type === 'contact.propertyChange' && relevant(deps, payloadOf(e).propertyName)) || e.type === 'contact.privacyDeletion') && !ours(e),
  );
  // Contacts consentd has stored are named from its store: the API budget (shared with pushes)
  // goes only to contacts it has never seen and to resubscriptions. A stored address may be older
  // than an email change made since the last pull; the change is then attributed to the address
  // the record had, which the next pull corrects.
  const storedSubject = new Map<string, string>();
  const toRead = new Set<string>();
  for (const e of wanted) {
    const id = String(payloadOf(e).objectId);
    if (known !== undefined && settledWithoutRead(e)) {
      if (storedSubject.has(id)) continue;
      const subject = await known.subjectOf(id);
      if (subject !== null) {
        storedSubject.set(id, subject);
        continue;
      }
    }
    toRead.add(id);
  }
  const ids = [...toRead];
  const contacts = new Map<string, SdkContact>();
  const properties = contactProperties(deps.subscriptions);
  for (let i = 0; i < ids.length; i += BATCH_MAX) {
    const r = await deps.api.batchRead(ids.slice(i, i + BATCH_MAX), properties);
    for (const c of r.results) contacts.set(String(c.id), c);
  }
  const readEmailOf = (objectId: string): string | null => {
    const c = contacts.get(objectId);
    if (c === undefined) return null;
    const e = normalizeEmail(c.properties['email']);
    return e.ok ? e.email : null;
  };
  const emailOf = (objectId: string): string | null => (contacts.has(objectId) ? readEmailOf(objectId) : (storedSubject.get(objectId) ?? null));
  const emails = [...new Set([...contacts.keys()].map(readEmailOf).filter((e): e is string => e !== null))];
  const statuses = deps.subscriptions.size > 0 && emails.length > 0 ? await deps.prefs.readStatuses(emails) : undefined;

  const observations: ObservationInput[] = [];
  const erasuresByRecord: HubSpotWebhookTranslation['erasuresByRecord'] = [];
  for (const e of wanted) {
    const p = payloadOf(e);
    const recordId = String(p.objectId);
    const subject = emailOf(recordId);
    const reference = `event:${e.id}`;
    if (e.type === 'contact.privacyDeletion') {
      if (subject === null) erasuresByRecord.push({ recordId, reference, statedAt: e.occurredAt });
      else observations.push({ subject, source: deps.connectorId, recordId, kind: 'erasure', channel: 'email', purpose: ALL_PURPOSES, state: 'denied', strength: 'explicit', statedAt: e.occurredAt, how: 'webhook', reference, evidence: `contact.privacyDeletion (${p.changeSource ?? 'unknown source'})`, reason: null });
      continue;
    }
    // A property change of a contact that is gone (or has no email): the next pull settles it.
    if (subject === null) continue;
    const base = { subject, source: deps.connectorId, recordId, channel: 'email' as const, how: 'webhook' as const, reference, statedAt: e.occurredAt };
    const prop = p.propertyName ?? '';
    const value = p.propertyValue ?? '';
    const via = `${prop}=${value} (${p.changeSource ?? 'unknown source'})`;
    if (prop === OPTOUT) {
      observations.push(
        value === 'true'
          ? { ...base, kind: 'consent', purpose: ALL_PURPOSES, state: 'denied', strength: 'explicit', evidence: via, reason: null }
          : { ...base, kind: 'consent', purpose: ALL_PURPOSES, state: 'unknown', strength: 'implicit', statedAt: null, evidence: via, reason: null },
      );
    } else if (prop.startsWith(SUB_PREFIX)) {
      const subscriptionId = prop.slice(SUB_PREFIX.length);
      const purpose = deps.subscriptions.get(subscriptionId) ?? ALL_PURPOSES;
      if (value === 'true') observations.push({ ...base, kind: 'consent', purpose, state: 'denied', strength: 'explicit', evidence: via, reason: null });
      else if (value === 'false') {
        const st = statuses?.get(subject)?.get(subscriptionId);
        const consent = st?.status === 'SUBSCRIBED' && st.legalBasis !== null && CONSENT_BASES.has(st.legalBasis);
        observations.push({ ...base, kind: 'consent', purpose, state: 'granted', strength: consent ? 'explicit' : 'implicit', evidence: st ? `${via}; ${evidenceOf(st)}` : `${via}; legal basis unknown`, reason: null });
      } else observations.push({ ...base, kind: 'consent', purpose, state: 'unknown', strength: 'implicit', statedAt: null, evidence: via, reason: null });
    } else {
      const reason = prop === 'hs_email_hard_bounce_reason_enum' ? (value.trim() !== '' ? 'hard_bounce' : null) : value === 'true' ? (prop === 'hs_email_bad_address' ? 'invalid_address' : 'blocked') : null;
      if (reason !== null) observations.push({ ...base, kind: 'suppression', purpose: ALL_PURPOSES, state: 'unknown', strength: 'explicit', evidence: via, reason });
    }
  }

  const records: RecordSnapshot[] = [];
  for (const c of contacts.values()) {
    const email = readEmailOf(String(c.id));
    const m = mapContact(c, { connectorId: deps.connectorId, subscriptions: deps.subscriptions, statuses: statuses && email ? statuses.get(email) : undefined, how: 'webhook' });
    if (m.ok) records.push(m.record);
  }
  return { observations, records, erasuresByRecord };
}

export function hubspotWebhook(deps: WebhookDeps): ConnectorWebhook & { toObservations(events: WebhookEvent[], known?: KnownRecords): Promise<HubSpotWebhookTranslation> } {
  return {
    verify: (req) => Promise.resolve().then(() => verifyHubSpotRequest(req, { appSecret: deps.appSecret, webhookUrl: deps.webhookUrl })),
    toObservations: (events, known) => translate(deps, events, known),
  };
}
