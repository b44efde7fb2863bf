import type { PullReject } from '../../src/connectors/contract.js';
import { normalizeEmail } from '../../src/model/email.js';
import { ALL_PURPOSES, scopeKey, type Channel, type ConsentState, type How, type ObservationInput, type RecordSnapshot } from '../../src/model/types.js';

/**
 * What a Contact / Lead (with its Individual and ContactPointTypeConsents) says, in canonical
 * terms. Pure functions only.
 *
 * - HasOptedOutOfEmail true -> (email, *) denied, explicit. Salesforce exposes no time for the
 *   flag itself: statedAt = LastModifiedDate (the latest time it can have been set).
 *   false -> nothing (absence is not consent: never a grant).
 * - DoNotCall -> (phone, *) denied; HasOptedOutOfFax -> (post, *) denied when faxChannel is post.
 * - Individual.HasOptedOutSolicit -> (email|phone|post, *) denied ("all marketing");
 *   Individual.ShouldForget -> an erasure request. statedAt = Individual.LastModifiedDate.
 * - ContactPointTypeConsent: OptIn -> granted (explicit, statedAt CaptureDate, evidence
 *   CaptureSource + double opt-in date); OptOut -> denied. Only consents in effect now
 *   (EffectiveFrom <= now < EffectiveTo) count. Email with a mapped DataUsePurpose -> (email,
 *   purpose); with no purpose -> (channel, *) for Email / Phone / MailingAddress. Consents
 *   consentd itself wrote (CaptureSource starting "consentd") give no grant observation: they
 *   echo our own push and only make the record snapshot read "granted".
 * - EmailBouncedReason / EmailBouncedDate (Contact.IsEmailBounced) -> hard_bounce suppression.
 */

export type PersonType = 'Contact' | 'Lead';

/** A Contact / Lead row as the pull SOQL selects it. */
export interface PersonRow {
  attributes?: { type?: string };
  Id: string;
  Email?: string | null;
  HasOptedOutOfEmail?: boolean | null;
  HasOptedOutOfFax?: boolean | null;
  DoNotCall?: boolean | null;
  EmailBouncedReason?: string | null;
  EmailBouncedDate?: string | null;
  IsEmailBounced?: boolean | null;
  IsConverted?: boolean | null;
  IsDeleted?: boolean | null;
  LastModifiedDate?: string | null;
  SystemModstamp?: string | null;
  IndividualId?: string | null;
  Individual?: IndividualRow | null;
}

export interface IndividualRow {
  Id?: string;
  ShouldForget?: boolean | null;
  HasOptedOutSolicit?: boolean | null;
  LastModifiedDate?: string | null;
}

export interface ConsentRow {
  Id: string;
  PartyId: string;
  ContactPointType?: string | null;
  PrivacyConsentStatus?: string | null;
  DataUsePurposeId?: string | null;
  DataUsePurpose?: { Name?: string | null } | null;
  CaptureDate?: string | null;
  CaptureSource?: string | null;
  EffectiveFrom?: string | null;
  EffectiveTo?: string | null;
  DoubleConsentCaptureDate?: string | null;
  LastModifiedDate?: string | null;
}

/** CaptureSource prefix of the consents consentd writes. */
export const CONSENTD_SOURCE = 'consentd';

export const CONTACT_POINT_CHANNEL: Readonly<Record<string, Channel>> = { Email: 'email', Phone: 'phone', MailingAddress: 'post' };
export const CHANNEL_CONTACT_POINT: Readonly<Record<string, string>> = { email: 'Email', phone: 'Phone', post: 'MailingAddress' };

/** Native purpose names <-> canonical ids (case-insensitive native names). */
export interface PurposeMap {
  canonical(native: string): string | undefined;
  /** Native names mapped to a canonical id (first one first). */
  natives(canonical: string): string[];
  mapped(): string[];
}

export function purposeMap(map: Readonly<Record<string, string>>): PurposeMap {
  const toCanonical = new Map<string, string>();
  const toNative = new Map<string, string[]>();
  for (const [native, canonical] of Object.entries(map)) {
    toCanonical.set(native.trim().toLowerCase(), canonical);
    toNative.set(canonical, [...(toNative.get(canonical) ?? []), native.trim()]);
  }
  return {
    canonical: (native) => toCanonical.get(native.trim().toLowerCase()),
    natives: (canonical) => toNative.get(canonical) ?? [],
    mapped: () => [...toNative.keys()].filter((p) => p !== ALL_PURPOSES),
  };
}

export interface MapOptions {
  connectorId: string;
  faxChannel: 'post' | 'none';
  privacy: boolean;
  purposes: PurposeMap;
  how: How;
  /** Consents in effect at this time. */
  now: number;
}

/** Salesforce REST datetime ("2025-01-01T00:00:00.000+0000") as ISO 8601 UTC; null when absent/invalid. */
export function isoTime(v: string | null | undefined): string | null {
  if (typeof v !== 'string' || v === '') return null;
  const ms = Date.parse(v.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isNaN(ms) ? null : new Date(ms).toISOString();
}

const ms = (v: string | null | undefined): number | null => {
  const iso = isoTime(v);
  return iso === null ? null : Date.parse(iso);
};

/** The consent in effect now: EffectiveFrom not in the future, EffectiveTo not in the past. */
export function inEffect(c: ConsentRow, now: number): boolean {
  const from = ms(c.EffectiveFrom);
  const to = ms(c.EffectiveTo);
  return (from === null || from <= now) && (to === null || to > now);
}

/** The scope a consent speaks about, or null (other contact point types, unmapped purposes). */
export function consentScope(c: ConsentRow, purposes: PurposeMap): { channel: Channel; purpose: string } | null {
  const channel = CONTACT_POINT_CHANNEL[c.ContactPointType ?? ''];
  if (!channel) return null;
  const hasPurpose = (c.DataUsePurposeId ?? null) !== null;
  if (!hasPurpose) return { channel, purpose: ALL_PURPOSES };
  if (channel !== 'email') return null;
  const name = c.DataUsePurpose?.Name;
  const purpose = typeof name === 'string' ? purposes.canonical(name) : undefined;
  return purpose === undefined ? null : { channel, purpose };
}

/** Later first: CaptureDate, then LastModifiedDate, then Id. */
function newer(a: ConsentRow, b: ConsentRow): boolean {
  const ca = ms(a.CaptureDate) ?? -Infinity;
  const cb = ms(b.CaptureDate) ?? -Infinity;
  if (ca !== cb) return ca > cb;
  const la = ms(a.LastModifiedDate) ?? -Infinity;
  const lb = ms(b.LastModifiedDate) ?? -Infinity;
  if (la !== lb) return la > lb;
  return a.Id > b.Id;
}

export interface MappedRecord {
  snapshot: RecordSnapshot | null;
  observations: ObservationInput[];
  reject: PullReject | null;
}

export function personType(row: PersonRow, fallback?: PersonType): PersonType {
  const t = row.attributes?.type;
  if (t === 'Contact' || t === 'Lead') return t;
  if (row.Id.startsWith('00Q')) return 'Lead';
  if (row.Id.startsWith('003')) return 'Contact';
  return fallback ?? 'Contact';
}

/** One Contact / Lead with its consents (those whose PartyId is its IndividualId). */
export function mapPerson(row: PersonRow, consents: readonly ConsentRow[], opts: MapOptions): MappedRecord {
  const type = personType(row);
  const e = normalizeEmail(row.Email ?? '');
  if (!e.ok) return { snapshot: null, observations: [], reject: { where: `${type} ${row.Id}`, reason: row.Email ? `invalid email: ${e.reason}` : 'no email address' } };
  const subject = e.email;
  const modified = isoTime(row.LastModifiedDate) ?? isoTime(row.SystemModstamp);
  const obs: ObservationInput[] = [];
  const base = { subject, source: opts.connectorId, recordId: row.Id, how: opts.how, reason: null } as const;
  const deny = (channel: Channel, statedAt: string | null, evidence: string, reference: string = row.Id): void => {
    obs.push({ ...base, kind: 'consent', channel, purpose: ALL_PURPOSES, state: 'denied', strength: 'explicit', statedAt, reference, evidence });
  };

  const consent: Record<string, ConsentState> = {};
  const flagScopes: [Channel, boolean][] = [
    ['email', row.HasOptedOutOfEmail === true],
    ['phone', row.DoNotCall === true],
  ];
  if (opts.faxChannel === 'post') flagScopes.push(['post', row.HasOptedOutOfFax === true]);
  for (const [channel, flag] of flagScopes) consent[scopeKey(channel, ALL_PURPOSES)] = flag ? 'denied' : 'unknown';
  if (row.HasOptedOutOfEmail === true) deny('email', modified, `${type}.HasOptedOutOfEmail`);
  if (row.DoNotCall === true) deny('phone', modified, `${type}.DoNotCall`);
  if (opts.faxChannel === 'post' && row.HasOptedOutOfFax === true) deny('post', modified, `${type}.HasOptedOutOfFax`);

  const ind = opts.privacy ? row.Individual : null;
  const indId = opts.privacy ? (row.IndividualId ?? null) : null;
  if (ind && indId) {
    const indTime = isoTime(ind.LastModifiedDate);
    if (ind.HasOptedOutSolicit === true) for (const ch of ['email', 'phone', 'post'] as const) deny(ch, indTime, 'Individual.HasOptedOutSolicit', indId);
    if (ind.ShouldForget === true) {
      obs.push({ ...base, kind: 'erasure', channel: 'email', purpose: ALL_PURPOSES, state: 'denied', strength: 'explicit', statedAt: indTime, reference: indId, evidence: 'Individual.ShouldForget' });
    }
  }

  if (opts.privacy) {
    for (const p of opts.purposes.mapped()) consent[scopeKey('email', p)] = 'unknown';
    const latest = new Map<string, ConsentRow>();
    for (const c of consents) {
      if (indId === null || c.PartyId.slice(0, 15) !== indId.slice(0, 15) || !inEffect(c, opts.now)) continue;
      const scope = consentScope(c, opts.purposes);
      if (!scope) continue;
      const status = c.PrivacyConsentStatus;
      if (status !== 'OptIn' && status !== 'OptOut') continue;
      const key = scopeKey(scope.channel, scope.purpose);
      const prev = latest.get(key);
      if (!prev || newer(c, prev)) latest.set(key, c);
      const ours = (c.CaptureSource ?? '').startsWith(CONSENTD_SOURCE);
      if (status === 'OptIn' && ours) continue;
      const evidence = [c.CaptureSource ? `CaptureSource: ${c.CaptureSource}` : 'ContactPointTypeConsent', c.DoubleConsentCaptureDate ? `double opt-in ${isoTime(c.DoubleConsentCaptureDate) ?? c.DoubleConsentCaptureDate}` : null]
        .filter((x) => x !== null)
        .join('; ');
      obs.push({
        ...base,
        kind: 'consent',
        channel: scope.channel,
        purpose: scope.purpose,
        state: status === 'OptIn' ? 'granted' : 'denied',
        strength: 'explicit',
        statedAt: isoTime(c.CaptureDate) ?? (status === 'OptOut' ? isoTime(c.LastModifiedDate) : null),
        reference: c.Id,
        evidence,
      });
    }
    // What the record says now: flags first (a set opt-out flag is a denial whatever the consents);
    // a flag scope reads "granted" only with an OptIn consent in effect; purposes read their latest consent.
    for (const [key, c] of latest) {
      const current = consent[key];
      if (current === undefined) continue;
      if (key.endsWith(':*')) {
        if (current === 'unknown' && c.PrivacyConsentStatus === 'OptIn') consent[key] = 'granted';
      } else {
        consent[key] = c.PrivacyConsentStatus === 'OptIn' ? 'granted' : 'denied';
      }
    }
  }

  const bounced = (row.EmailBouncedReason ?? null) !== null || (row.EmailBouncedDate ?? null) !== null || row.IsEmailBounced === true;
  if (bounced) {
    obs.push({
      ...base,
      how: opts.how === 'pull' ? 'bounce' : opts.how,
      kind: 'suppression',
      channel: 'email',
      purpose: ALL_PURPOSES,
      state: 'unknown',
      strength: 'explicit',
      statedAt: isoTime(row.EmailBouncedDate),
      reference: row.Id,
      evidence: row.EmailBouncedReason ?? `${type}.IsEmailBounced`,
      reason: 'hard_bounce',
    });
  }

  const snapshot: RecordSnapshot = {
    connectorId: opts.connectorId,
    recordId: row.Id,
    subject,
    consent,
    suppressed: { email: bounced },
    meta: { type, individualId: indId },
  };
  return { snapshot, observations: obs, reject: null };
}
