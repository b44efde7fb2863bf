import { normalizeEmail } from '../../src/model/email.js';
import { ALL_PURPOSES, scopeKey } from '../../src/model/types.js';
import type { ConsentState, How, ObservationInput, RecordSnapshot, Strength, SuppressionReason } from '../../src/model/types.js';
import type { PullReject } from '../../src/connectors/contract.js';

/*
 * What a HubSpot contact says, in canonical terms. Pure functions only.
 *
 * - hs_email_optout "true" -> (email, *) denied, explicit. HubSpot gives no time for the opt-out
 *   through the CRM API: statedAt = lastmodifieddate, the best available (it can only be later
 *   than the real opt-out, which errs on the side of the denial). "false" / empty -> unknown
 *   (absence is not consent: never granted).
 * - subscription statuses (communication preferences v4, per mapped subscription type):
 *   SUBSCRIBED -> granted; explicit only with a consent legal basis (CONSENT_WITH_NOTICE),
 *   implicit for legitimate interest, contract, NON_GDPR, ...; UNSUBSCRIBED -> denied explicit
 *   at its timestamp; NOT_SPECIFIED -> unknown.
 *   Without v4 statuses (v3 mode), hs_email_optout_<id> stands in: "true" -> denied explicit,
 *   "false" -> granted implicit (the legal basis is unknown), empty -> unknown.
 * - hs_email_hard_bounce_reason_enum set -> suppression hard_bounce; hs_email_bad_address "true"
 *   -> invalid_address; hs_email_quarantined "true" -> blocked (state unknown: a deliverability
 *   fact, not consent). HubSpot's bounce state is read-only: it is never written.
 */

export const OPTOUT = 'hs_email_optout';
export const BOUNCE_PROPS = ['hs_email_hard_bounce_reason_enum', 'hs_email_bad_address', 'hs_email_quarantined'] as const;
export const optoutProp = (subscriptionId: string): string => `hs_email_optout_${subscriptionId}`;

/** Legal bases that are consent (a person said yes with notice). Everything else makes a grant implicit. */
export const CONSENT_BASES: ReadonlySet<string> = new Set(['CONSENT_WITH_NOTICE']);

export type SubStatusValue = 'SUBSCRIBED' | 'UNSUBSCRIBED' | 'NOT_SPECIFIED';

/** One subscription status of an address (communication preferences v4). */
export interface SubStatus {
  subscriptionId: string;
  status: SubStatusValue;
  legalBasis: string | null;
  legalBasisExplanation: string | null;
  source: string | null;
  timestamp: string | null;
}

/** A contact as the CRM API returns it. */
export interface HsContact {
  id: string;
  properties: Record<string, string | null | undefined>;
  updatedAt?: Date | string;
}

/** Subscription type id -> canonical purpose (settings.subscriptions). */
export type SubscriptionMap = ReadonlyMap<string, string>;

export function contactProperties(subscriptions: SubscriptionMap): string[] {
  return ['email', 'lastmodifieddate', 'hs_object_id', OPTOUT, ...BOUNCE_PROPS, ...[...subscriptions.keys()].map(optoutProp)];
}

/** Canonical purposes the map expresses (each once). */
export function mappedPurposes(subscriptions: SubscriptionMap): string[] {
  return [...new Set(subscriptions.values())].filter((p) => p !== ALL_PURPOSES);
}

/** Subscription type ids mapped to a canonical purpose. */
export function subscriptionIdsFor(subscriptions: SubscriptionMap, purpose: string): string[] {
  return [...subscriptions.entries()].filter(([, p]) => p === purpose).map(([id]) => id);
}

/** lastmodifieddate (ISO or ms) as epoch ms, or null. */
export function lastModifiedMs(c: HsContact): number | null {
  const raw = c.properties['lastmodifieddate'];
  if (raw !== null && raw !== undefined && raw !== '') {
    const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
    if (!Number.isNaN(ms)) return ms;
  }
  if (c.updatedAt !== undefined) {
    const ms = new Date(c.updatedAt).getTime();
    if (!Number.isNaN(ms)) return ms;
  }
  return null;
}

function iso(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function isoOf(raw: string | null): string | null {
  if (raw === null || raw === '') return null;
  const ms = Date.parse(raw);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

const truthy = (v: string | null | undefined): boolean => v === 'true';
const filled = (v: string | null | undefined): boolean => v !== null && v !== undefined && v.trim() !== '';

export function evidenceOf(s: Pick<SubStatus, 'legalBasis' | 'legalBasisExplanation' | 'source'>): string {
  const parts = [`legal basis ${s.legalBasis ?? 'none'}`];
  if (s.legalBasisExplanation) parts.push(`explanation: ${s.legalBasisExplanation}`);
  if (s.source) parts.push(`source ${s.source}`);
  return parts.join('; ');
}

/** A consent statement about one subscription status. */
export function statusStatement(s: SubStatus): { state: ConsentState; strength: Strength; statedAt: string | null; evidence: string | null } {
  switch (s.status) {
    case 'SUBSCRIBED':
      return { state: 'granted', strength: s.legalBasis !== null && CONSENT_BASES.has(s.legalBasis) ? 'explicit' : 'implicit', statedAt: isoOf(s.timestamp), evidence: evidenceOf(s) };
    case 'UNSUBSCRIBED':
      return { state: 'denied', strength: 'explicit', statedAt: isoOf(s.timestamp), evidence: s.source ? `unsubscribed; source ${s.source}` : 'unsubscribed' };
    default:
      return { state: 'unknown', strength: 'implicit', statedAt: null, evidence: null };
  }
}

/** hs_email_optout_<id> as a status when v4 statuses are not available. */
export function statusFromProperty(subscriptionId: string, value: string | null | undefined, lastModified: string | null): SubStatus {
  const status: SubStatusValue = value === 'true' ? 'UNSUBSCRIBED' : value === 'false' ? 'SUBSCRIBED' : 'NOT_SPECIFIED';
  return { subscriptionId, status, legalBasis: null, legalBasisExplanation: null, source: `property ${optoutProp(subscriptionId)}`, timestamp: status === 'NOT_SPECIFIED' ? null : lastModified };
}

/** Suppression reasons a contact's bounce properties state. */
export function suppressionsOf(props: HsContact['properties']): SuppressionReason[] {
  const out: SuppressionReason[] = [];
  if (filled(props['hs_email_hard_bounce_reason_enum'])) out.push('hard_bounce');
  if (truthy(props['hs_email_bad_address'])) out.push('invalid_address');
  if (truthy(props['hs_email_quarantined'])) out.push('blocked');
  return out;
}

/** Combined snapshot state of several subscription types mapped to one purpose: a denial anywhere wins. */
function combine(states: ConsentState[]): ConsentState {
  if (states.includes('denied')) return 'denied';
  if (states.includes('granted')) return 'granted';
  return 'unknown';
}

export interface MapOptions {
  connectorId: string;
  subscriptions: SubscriptionMap;
  /** v4 statuses of the contact's address by subscription id; undefined = use hs_email_optout_<id>. */
  statuses: ReadonlyMap<string, SubStatus> | undefined;
  how: How;
}

export type MappedContact = { ok: true; record: RecordSnapshot; observations: ObservationInput[] } | { ok: false; reject: PullReject };

/** One contact -> one record snapshot and its observations; a contact without a valid email is a reject. */
export function mapContact(c: HsContact, o: MapOptions): MappedContact {
  const stored = c.properties['email'] ?? null;
  const e = normalizeEmail(stored);
  if (!e.ok) return { ok: false, reject: { where: `hubspot contact ${c.id}`, reason: stored === null || stored === '' ? 'contact has no email' : `invalid email ${JSON.stringify(stored)}: ${e.reason}` } };
  const subject = e.email;
  const lastModified = iso(lastModifiedMs(c));
  const observations: ObservationInput[] = [];
  const base = { subject, source: o.connectorId, recordId: c.id, channel: 'email' as const, how: o.how, reference: `contact:${c.id}`, reason: null };

  const optedOut = truthy(c.properties[OPTOUT]);
  observations.push(
    optedOut
      ? { ...base, kind: 'consent', purpose: ALL_PURPOSES, state: 'denied', strength: 'explicit', statedAt: lastModified, evidence: `${OPTOUT}=true (time: lastmodifieddate)` }
      : { ...base, kind: 'consent', purpose: ALL_PURPOSES, state: 'unknown', strength: 'implicit', statedAt: null, evidence: null },
  );
  const consent: Record<string, ConsentState> = { [scopeKey('email', ALL_PURPOSES)]: optedOut ? 'denied' : 'unknown' };

  const perPurpose = new Map<string, ConsentState[]>();
  for (const [subscriptionId, purpose] of o.subscriptions) {
    const s = o.statuses?.get(subscriptionId) ?? (o.statuses === undefined ? statusFromProperty(subscriptionId, c.properties[optoutProp(subscriptionId)], lastModified) : undefined);
    const st = s ? statusStatement(s) : { state: 'unknown' as const, strength: 'implicit' as const, statedAt: null, evidence: null };
    observations.push({ ...base, kind: 'consent', purpose, reference: `contact:${c.id}:subscription:${subscriptionId}`, ...st });
    perPurpose.set(purpose, [...(perPurpose.get(purpose) ?? []), st.state]);
  }
  for (const [purpose, states] of perPurpose) consent[scopeKey('email', purpose)] = combine(states);

  const reasons = suppressionsOf(c.properties);
  for (const reason of reasons) {
    observations.push({ ...base, kind: 'suppression', purpose: ALL_PURPOSES, state: 'unknown', strength: 'explicit', statedAt: lastModified, evidence: bounceEvidence(c.properties), reason });
  }
  const record: RecordSnapshot = { connectorId: o.connectorId, recordId: c.id, subject, consent, suppressed: { email: reasons.length > 0 }, meta: { email: stored } };
  return { ok: true, record, observations };
}

function bounceEvidence(props: HsContact['properties']): string {
  return BOUNCE_PROPS.filter((p) => filled(props[p])).map((p) => `${p}=${props[p] ?? ''}`).join(', ');
}

/** The SubStatus a v4 status item describes (reads say `status`, writes `statusState`). */
export function parseV4Status(item: unknown): SubStatus | null {
  if (typeof item !== 'object' || item === null) return null;
  const i = item as Record<string, unknown>;
  const id = i['subscriptionId'];
  if (typeof id !== 'number' && typeof id !== 'string') return null;
  const raw = i['status'] ?? i['statusState'];
  const status: SubStatusValue = raw === 'SUBSCRIBED' || raw === 'UNSUBSCRIBED' ? raw : 'NOT_SPECIFIED';
  const str = (k: string): string | null => (typeof i[k] === 'string' && i[k] !== '' ? (i[k] as string) : null);
  return { subscriptionId: String(id), status, legalBasis: str('legalBasis'), legalBasisExplanation: str('legalBasisExplanation'), source: str('source'), timestamp: str('timestamp') };
}
