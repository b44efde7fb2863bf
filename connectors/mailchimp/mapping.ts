import { normalizeEmail } from '../../src/model/email.js';
import { ALL_PURPOSES, scopeKey } from '../../src/model/types.js';
import type { ConsentState, ObservationInput, RecordSnapshot } from '../../src/model/types.js';
import type { PullReject } from '../../src/connectors/contract.js';

/*
 * What a Mailchimp list member means in canonical terms. Pure functions only.
 *
 * One RecordSnapshot per member per list: recordId `<listId>:<member id>` (the member id is
 * the subscriber hash, md5 of the lowercased address), meta { listId, hash }.
 *
 * Observations (all how 'pull', reference = recordId):
 * - subscribed with timestamp_opt: (email, *) granted explicit, statedAt timestamp_opt,
 *   evidence "opt-in ip <ip_opt>" (the double / single opt-in Mailchimp recorded);
 * - subscribed without timestamp_opt: an import or an admin add: (email, *) granted implicit
 *   (policy rule 2 makes it unknown), statedAt last_changed;
 * - pending, transactional (archived members are not listed): no statement;
 * - unsubscribed: (email, *) denied explicit, statedAt last_changed, evidence the
 *   unsubscribe_reason; an unsubscribe_reason naming abuse / spam is a complaint suppression
 *   (rule 5 makes it a denial too);
 * - cleaned: suppression hard_bounce (complaint when the reason names abuse), statedAt last_changed.
 * - GDPR marketing permissions (mapped in `purposes`): enabled true -> (email, P) granted,
 *   explicit only for a subscribed member with timestamp_opt (statedAt timestamp_opt: Mailchimp
 *   keeps no per-permission time, and the opt-in is when the form collected them; a later change
 *   in the preference centre keeps that older time, so it never outranks a later denial);
 *   otherwise implicit. enabled false says nothing: Mailchimp cannot tell "turned off" from
 *   "never asked" (unchecked boxes are false), so it is not a denial. Interests (groups) are
 *   the same but always implicit: they are audience segmentation, not a consent record.
 *
 * The snapshot is what the record enforces, for planning:
 * - (email, *): subscribed granted; pending granted (a confirmation email is out: planning it
 *   as granted keeps consentd from sending another); unsubscribed and cleaned denied;
 *   transactional unknown;
 * - (email, P): enabled -> granted, else denied (Mailchimp will not use a disabled permission);
 * - suppressed.email: unsubscribed or cleaned (Mailchimp sends them nothing; it is also the
 *   native mechanism consentd suppresses with, so a pushed suppression converges).
 */

export interface McMarketingPermission {
  marketing_permission_id: string;
  text?: string;
  enabled: boolean;
}

export interface McMember {
  id: string;
  email_address: string;
  status: string;
  timestamp_opt?: string;
  ip_opt?: string;
  last_changed?: string;
  unsubscribe_reason?: string;
  marketing_permissions?: McMarketingPermission[];
  interests?: Record<string, boolean>;
}

/** Fields requested on pull (Mailchimp's `fields` parameter): smaller pages. */
export const MEMBER_FIELDS = [
  'id',
  'email_address',
  'status',
  'timestamp_opt',
  'ip_opt',
  'last_changed',
  'unsubscribe_reason',
  'marketing_permissions',
  'interests',
] as const;

export interface ListMapping {
  listId: string;
  /** native id (marketing permission or interest) -> canonical purpose. */
  purposes: ReadonlyMap<string, string>;
}

export interface MemberMapping {
  record: RecordSnapshot | null;
  observations: ObservationInput[];
  reject: PullReject | null;
}

/** "2024-05-01T12:34:56+00:00" -> ISO (UTC); '' / invalid -> null. */
export function mcTimeToIso(s: string | undefined | null): string | null {
  if (s === undefined || s === null || s.trim() === '') return null;
  const ms = Date.parse(s);
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

export const recordIdOf = (listId: string, hash: string): string => `${listId}:${hash}`;

export function parseRecordId(recordId: string): { listId: string; hash: string } | null {
  const i = recordId.indexOf(':');
  if (i <= 0 || recordId.includes('@')) return null;
  return { listId: recordId.slice(0, i), hash: recordId.slice(i + 1) };
}

const ABUSE = /abuse|spam|complain/i;

export function isAbuseReason(reason: string | undefined | null): boolean {
  return typeof reason === 'string' && ABUSE.test(reason);
}

/** Consent snapshot of (email, *) for a status. */
export function wideSnapshotState(status: string): ConsentState {
  switch (status) {
    case 'subscribed':
    case 'pending':
      return 'granted';
    case 'unsubscribed':
    case 'cleaned':
      return 'denied';
    default:
      return 'unknown';
  }
}

export function mapMember(connectorId: string, list: ListMapping, m: McMember): MemberMapping {
  const recordId = recordIdOf(list.listId, m.id);
  const norm = normalizeEmail(m.email_address);
  if (!norm.ok) return { record: null, observations: [], reject: { where: recordId, reason: `invalid email_address: ${norm.reason}` } };
  const subject = norm.email;
  const lastChanged = mcTimeToIso(m.last_changed);
  const optAt = mcTimeToIso(m.timestamp_opt);
  const explicitOptIn = m.status === 'subscribed' && optAt !== null;
  const base = { subject, source: connectorId, recordId, channel: 'email' as const, how: 'pull' as const, reference: recordId };
  const observations: ObservationInput[] = [];

  switch (m.status) {
    case 'subscribed':
      observations.push({
        ...base,
        kind: 'consent',
        purpose: ALL_PURPOSES,
        state: 'granted',
        strength: explicitOptIn ? 'explicit' : 'implicit',
        statedAt: explicitOptIn ? optAt : lastChanged,
        evidence: explicitOptIn ? `opt-in ip ${m.ip_opt && m.ip_opt !== '' ? m.ip_opt : 'unknown'}` : 'subscribed without opt-in time (import or admin add)',
        reason: null,
      });
      break;
    case 'unsubscribed':
      if (isAbuseReason(m.unsubscribe_reason)) {
        observations.push({ ...base, kind: 'suppression', purpose: ALL_PURPOSES, state: 'denied', strength: 'explicit', statedAt: lastChanged, evidence: `unsubscribed: ${m.unsubscribe_reason ?? ''}`, reason: 'complaint' });
      } else {
        observations.push({
          ...base,
          kind: 'consent',
          purpose: ALL_PURPOSES,
          state: 'denied',
          strength: 'explicit',
          statedAt: lastChanged,
          evidence: m.unsubscribe_reason ? `unsubscribed: ${m.unsubscribe_reason}` : 'unsubscribed',
          reason: null,
        });
      }
      break;
    case 'cleaned': {
      const complaint = isAbuseReason(m.unsubscribe_reason);
      observations.push({
        ...base,
        kind: 'suppression',
        purpose: ALL_PURPOSES,
        state: complaint ? 'denied' : 'unknown',
        strength: 'explicit',
        statedAt: lastChanged,
        evidence: complaint ? `cleaned: ${m.unsubscribe_reason ?? 'abuse'}` : 'cleaned (hard bounce)',
        reason: complaint ? 'complaint' : 'hard_bounce',
      });
      break;
    }
    default:
      // pending, transactional: no statement by the person yet.
      break;
  }

  const consent: Record<string, ConsentState> = { [scopeKey('email', ALL_PURPOSES)]: wideSnapshotState(m.status) };
  const permissions = new Map((m.marketing_permissions ?? []).map((p) => [p.marketing_permission_id, p.enabled === true] as const));
  const interests = m.interests ?? {};
  // A purpose mapped from several native ids is granted if any of them is on.
  const perPurpose = new Map<string, { on: boolean; gdpr: boolean }>();
  for (const [native, purpose] of list.purposes) {
    const gdpr = permissions.has(native);
    if (!gdpr && !(native in interests)) continue;
    const on = gdpr ? permissions.get(native) === true : interests[native] === true;
    const prev = perPurpose.get(purpose);
    perPurpose.set(purpose, { on: (prev?.on ?? false) || on, gdpr: (prev?.gdpr ?? false) || (gdpr && on) });
  }
  for (const [purpose, { on, gdpr }] of perPurpose) {
    consent[scopeKey('email', purpose)] = on ? 'granted' : 'denied';
    if (!on) continue;
    const explicit = gdpr && explicitOptIn;
    observations.push({
      ...base,
      kind: 'consent',
      purpose,
      state: 'granted',
      strength: explicit ? 'explicit' : 'implicit',
      statedAt: explicit ? optAt : lastChanged,
      evidence: gdpr ? (explicit ? `GDPR marketing permission, opt-in ip ${m.ip_opt || 'unknown'}` : 'GDPR marketing permission enabled (member not opted in)') : 'interest group',
      reason: null,
    });
  }

  const record: RecordSnapshot = {
    connectorId,
    recordId,
    subject,
    consent,
    suppressed: { email: m.status === 'unsubscribed' || m.status === 'cleaned' },
    meta: { listId: list.listId, hash: m.id },
  };
  return { record, observations, reject: null };
}
