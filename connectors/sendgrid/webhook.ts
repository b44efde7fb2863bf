/**
 * The Signed Event Webhook: ECDSA P-256 / SHA-256 over `timestamp + rawBody`, verified with
 * node:crypto against the account's public key (base64 DER SPKI); signature base64 DER in
 * X-Twilio-Email-Event-Webhook-Signature, timestamp (unix seconds) in
 * X-Twilio-Email-Event-Webhook-Timestamp. The raw bytes are verified, never re-serialized JSON.
 *
 * Window: see settings.ts (10 minutes old, 5 minutes ahead). Events arrive late, duplicated and
 * out of order; each observation carries the event's own timestamp as statedAt, so the policy
 * (which orders by statedAt) does not care, and the event id (sg_event_id) dedupes replays.
 */
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { WebhookRejection, type ConnectorContext, type ConnectorWebhook, type WebhookEvent, type WebhookRequest, type WebhookTranslation } from '../../src/connectors/contract.js';
import { ALL_PURPOSES, normalizeEmail, type ObservationInput, type RecordSnapshot } from '../../src/model/index.js';
import { consentObservation, isoFromUnix, SnapshotBuilder, suppressionObservation, type PurposeMap } from './mapping.js';

export const SIGNATURE_HEADER = 'x-twilio-email-event-webhook-signature';
export const TIMESTAMP_HEADER = 'x-twilio-email-event-webhook-timestamp';
/** A signed timestamp this far ahead of our clock is refused. */
export const MAX_FUTURE_SECONDS = 300;

/** The fields every SendGrid event has and we rely on; the rest is kept as payload. */
export interface SgWebhookEvent {
  email: string;
  event: string;
  timestamp: number;
  sg_event_id: string;
  asm_group_id?: number;
  type?: string;
  reason?: string;
  status?: string;
  [k: string]: unknown;
}

function header(req: WebhookRequest, name: string): string | undefined {
  const direct = req.headers[name];
  const v = direct ?? Object.entries(req.headers).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(v) ? v[0] : v;
}

export function parsePublicKey(b64: string): KeyObject {
  return createPublicKey({ key: Buffer.from(b64, 'base64'), format: 'der', type: 'spki' });
}

/** ECDSA check of `timestamp + rawBody`; false for anything unparseable. */
export function verifySignature(key: KeyObject, timestamp: string, rawBody: Buffer, signatureB64: string): boolean {
  const sig = signatureB64.trim();
  if (sig === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(sig)) return false;
  try {
    return verify('sha256', Buffer.concat([Buffer.from(timestamp, 'utf8'), rawBody]), key, Buffer.from(sig, 'base64'));
  } catch {
    return false;
  }
}

function isEvent(v: unknown): v is SgWebhookEvent {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return typeof o['email'] === 'string' && typeof o['event'] === 'string' && o['event'] !== '' && typeof o['timestamp'] === 'number' && Number.isFinite(o['timestamp']) && typeof o['sg_event_id'] === 'string' && o['sg_event_id'] !== '';
}

/** Body: a JSON array of event objects with email, event, timestamp and sg_event_id. */
export function parseEvents(rawBody: Buffer): SgWebhookEvent[] {
  let body: unknown;
  try {
    body = JSON.parse(rawBody.toString('utf8'));
  } catch {
    throw new WebhookRejection('malformed', 'SendGrid webhook body is not JSON');
  }
  if (!Array.isArray(body)) throw new WebhookRejection('malformed', 'SendGrid webhook body is not a JSON array');
  const bad = body.findIndex((e) => !isEvent(e));
  if (bad !== -1) throw new WebhookRejection('malformed', `SendGrid webhook event #${bad} lacks email, event, timestamp or sg_event_id`);
  return body as SgWebhookEvent[];
}

/** `dropped` with reason "Invalid" (the address, not e.g. "Invalid SMTPAPI header"). */
export function isInvalidAddressDrop(reason: unknown): boolean {
  return typeof reason === 'string' && /^invalid(\s+(e-?mail\s*)?address|\s+e-?mail)?\.?$/i.test(reason.trim());
}

export interface WebhookDeps {
  ctx: Pick<ConnectorContext, 'id' | 'logger'>;
  purposes: PurposeMap;
  publicKey: string;
  maxAgeSeconds: number;
  now?: () => number;
}

export function createSendGridWebhook(deps: WebhookDeps): ConnectorWebhook {
  const key = parsePublicKey(deps.publicKey);
  const now = deps.now ?? ((): number => Date.now());

  return {
    verify(req: WebhookRequest): Promise<WebhookEvent[]> {
      const signature = header(req, SIGNATURE_HEADER);
      const timestamp = header(req, TIMESTAMP_HEADER);
      if (signature === undefined || timestamp === undefined) return Promise.reject(new WebhookRejection('bad_signature', 'SendGrid signature or timestamp header missing'));
      if (!/^\d{1,12}$/.test(timestamp.trim())) return Promise.reject(new WebhookRejection('bad_signature', 'SendGrid webhook timestamp is not unix seconds'));
      if (!verifySignature(key, timestamp, req.rawBody, signature)) return Promise.reject(new WebhookRejection('bad_signature', 'SendGrid webhook signature does not verify'));
      const ageMs = now() - Number(timestamp.trim()) * 1000;
      if (ageMs > deps.maxAgeSeconds * 1000) return Promise.reject(new WebhookRejection('stale_timestamp', `SendGrid webhook signed ${Math.round(ageMs / 1000)} s ago (limit ${deps.maxAgeSeconds} s)`));
      if (-ageMs > MAX_FUTURE_SECONDS * 1000) return Promise.reject(new WebhookRejection('stale_timestamp', `SendGrid webhook timestamp is ${Math.round(-ageMs / 1000)} s in the future`));
      try {
        const events = parseEvents(req.rawBody);
        return Promise.resolve(events.map((e) => ({ id: e.sg_event_id, type: e.event, occurredAt: isoFromUnix(e.timestamp), payload: e })));
      } catch (err) {
        return Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
    },

    toObservations(events: WebhookEvent[]): Promise<WebhookTranslation> {
      return Promise.resolve(translateEvents(deps.ctx, deps.purposes, events));
    },
  };
}

/**
 * Events -> observations, plus a snapshot for addresses whose SendGrid state the events reveal
 * enough of (on a suppression list: suppressed; globally unsubscribed: everything denied).
 * Group events alone reveal too little to snapshot (see pull.ts on partial snapshots).
 */
export function translateEvents(ctx: Pick<ConnectorContext, 'id' | 'logger'>, purposes: PurposeMap, events: WebhookEvent[]): WebhookTranslation {
  const observations: ObservationInput[] = [];
  const builder = new SnapshotBuilder(ctx.id, purposes, { global: false, groups: false });
  for (const ev of events) {
    if (!isEvent(ev.payload)) continue;
    const e = ev.payload;
    const n = normalizeEmail(e.email);
    if (!n.ok) {
      ctx.logger.warn({ connector: ctx.id, event: ev.id, reason: n.reason }, 'sendgrid event with an unusable address skipped');
      continue;
    }
    const email = n.email;
    const base = { connectorId: ctx.id, email, statedAt: isoFromUnix(e.timestamp), how: 'webhook' as const, reference: ev.id, evidence: `SendGrid event ${e.event}` };
    switch (e.event) {
      case 'unsubscribe':
        observations.push(consentObservation(base, ALL_PURPOSES, 'denied'));
        builder.addList(email, 'unsubscribes');
        break;
      case 'group_unsubscribe':
      case 'group_resubscribe': {
        const groupId = typeof e.asm_group_id === 'number' ? e.asm_group_id : Number(e.asm_group_id);
        const purpose = Number.isInteger(groupId) ? purposes.purposeOf(groupId) : undefined;
        if (purpose === undefined) break;
        observations.push(consentObservation({ ...base, evidence: `SendGrid event ${e.event} (group ${groupId})` }, purpose, e.event === 'group_unsubscribe' ? 'denied' : 'granted'));
        break;
      }
      case 'spamreport':
        observations.push(suppressionObservation(base, 'complaint'));
        builder.addList(email, 'spam_reports');
        break;
      case 'bounce': {
        const blocked = e.type === 'blocked';
        const detail = [e.status, e.reason].filter((x) => typeof x === 'string' && x !== '').join(' ');
        observations.push(suppressionObservation({ ...base, evidence: `SendGrid ${blocked ? 'block' : 'bounce'}${detail ? `: ${detail}` : ''}` }, blocked ? 'blocked' : 'hard_bounce'));
        builder.addList(email, blocked ? 'blocks' : 'bounces');
        break;
      }
      case 'dropped':
        if (isInvalidAddressDrop(e.reason)) {
          observations.push(suppressionObservation({ ...base, evidence: 'SendGrid dropped: Invalid' }, 'invalid_address'));
          builder.addList(email, 'invalid_emails');
        }
        break;
      default:
        // delivered, open, click, processed, deferred, ...: nothing about consent.
        break;
    }
  }
  const records: RecordSnapshot[] = builder.emails((e) => builder.isListed(e)).map((e) => builder.snapshot(e));
  return records.length > 0 ? { observations, records } : { observations };
}
