import { normalizeEmail } from '../../src/model/email.js';
import { ALL_PURPOSES, scopeKey } from '../../src/model/types.js';
import type { Channel, ConsentState, ObservationInput, RecordSnapshot, Strength, SuppressionReason } from '../../src/model/types.js';

/*
 * What a row of a consent / suppression list means, in canonical terms. Pure functions only.
 *
 * Row kinds:
 * - consent: granted / denied / unknown for (channel, purpose). Denials are explicit; a grant is
 *   explicit only with both stated_at and evidence (policy rule 2), else implicit; unknown is
 *   implicit.
 * - suppression: bounced / invalid / complained / suppressed. Channel-wide (purpose ignored).
 *   A complaint is stated as `denied` (policy rule 5 makes it a denial of (channel, *));
 *   bounces, invalid addresses and blocks as `unknown` (a deliverability fact, not consent).
 * - erasure: erase / forget / erasure: the person asked to be forgotten (state `denied`).
 * - marker: a row consentd itself wrote to record a suppression (state unsubscribed, evidence
 *   "consentd:suppressed..."). It is the echo of our own push: it marks the record suppressed
 *   in the snapshot and produces no observation (no ping-pong, policy rule 10), and it is not
 *   a denial (a bounce elsewhere must not become a consent denial here).
 */

export type Column = 'email' | 'channel' | 'purpose' | 'state' | 'stated_at' | 'evidence';
export const COLUMNS: readonly Column[] = ['email', 'channel', 'purpose', 'state', 'stated_at', 'evidence'];
export const DEFAULT_HEADER: readonly string[] = COLUMNS;

const HEADER_SYNONYMS: Record<Column, readonly string[]> = {
  email: ['email', 'e_mail', 'email_address', 'e_mail_address', 'emailaddress', 'mail_address'],
  channel: ['channel', 'medium'],
  purpose: ['purpose', 'topic', 'list', 'subscription', 'subscription_type'],
  state: ['state', 'status', 'consent', 'consent_status', 'subscription_status'],
  stated_at: ['stated_at', 'date', 'updated_at', 'timestamp', 'time', 'changed_at', 'consent_date', 'datetime'],
  evidence: ['evidence', 'source', 'proof', 'consent_source'],
};

const normHeader = (h: string): string =>
  h
    .replace(/^\uFEFF/, '')
    .trim()
    .toLowerCase()
    .replace(/[\s.-]+/g, '_');

const HEADER_LOOKUP = new Map<string, Column>(Object.entries(HEADER_SYNONYMS).flatMap(([col, names]) => names.map((n) => [n, col as Column] as const)));

export type HeaderMap = Partial<Record<Column, number>> & { email: number; state: number };

export type HeaderResult = { ok: true; columns: HeaderMap; width: number } | { ok: false; reason: string };

/** Recognize the header row: email and state are required; other columns optional; extra columns kept and ignored. */
export function parseHeader(fields: readonly string[]): HeaderResult {
  const found: Partial<Record<Column, number>> = {};
  for (const [i, f] of fields.entries()) {
    const col = HEADER_LOOKUP.get(normHeader(f));
    if (!col) continue;
    if (found[col] !== undefined) return { ok: false, reason: `columns ${found[col] + 1} and ${i + 1} both mean "${col}" ("${fields[found[col]] ?? ''}", "${f}")` };
    found[col] = i;
  }
  const missing = (['email', 'state'] as const).filter((c) => found[c] === undefined);
  if (missing.length > 0 || found.email === undefined || found.state === undefined) {
    return {
      ok: false,
      reason: `header ${JSON.stringify(fields.join(','))} has no ${missing.join(' and ')} column (accepted names: ${missing.map((c) => HEADER_SYNONYMS[c].join('/')).join('; ')})`,
    };
  }
  return { ok: true, columns: { ...found, email: found.email, state: found.state }, width: fields.length };
}

type StateMeaning =
  | { kind: 'consent'; state: ConsentState }
  | { kind: 'suppression'; reason: SuppressionReason }
  | { kind: 'erasure' };

const STATE_WORDS = new Map<string, StateMeaning>();
const add = (meaning: StateMeaning, ...words: string[]): void => {
  for (const w of words) STATE_WORDS.set(w, meaning);
};
add({ kind: 'consent', state: 'granted' }, 'granted', 'subscribed', 'optedin', 'optin', 'yes', 'y', 'true', 'consent', 'consented');
add({ kind: 'consent', state: 'denied' }, 'denied', 'unsubscribed', 'optedout', 'optout', 'no', 'n', 'false', 'donotemail', 'dne');
add({ kind: 'consent', state: 'unknown' }, 'unknown', 'pending', '');
add({ kind: 'suppression', reason: 'hard_bounce' }, 'bounced', 'bounce', 'hardbounce', 'hardbounced');
add({ kind: 'suppression', reason: 'invalid_address' }, 'invalid', 'invalidaddress', 'invalidemail');
add({ kind: 'suppression', reason: 'complaint' }, 'complained', 'complaint', 'spam', 'spamreport', 'spamcomplaint');
add({ kind: 'suppression', reason: 'blocked' }, 'suppressed', 'blocked');
add({ kind: 'erasure' }, 'erase', 'erased', 'forget', 'erasure');

/** Raw state cells seen -> meaning (bounded: a file has a handful of distinct words). */
const STATE_CACHE = new Map<string, StateMeaning | undefined>();

/** "Opt-In", "opted_in", " OPTIN " -> the same meaning. */
export function stateMeaning(word: string): StateMeaning | undefined {
  if (STATE_CACHE.has(word)) return STATE_CACHE.get(word);
  const meaning = STATE_WORDS.get(word.trim().toLowerCase().replace(/[\s_-]+/g, ''));
  if (STATE_CACHE.size < 1000) STATE_CACHE.set(word, meaning);
  return meaning;
}

/** Words consentd writes. */
export const WRITE_WORDS = { granted: 'subscribed', denied: 'unsubscribed', suppressed: 'suppressed' } as const;
/** Evidence prefix of the rows consentd writes to record a suppression (see "marker"). */
export const SUPPRESSION_MARKER = 'consentd:suppressed';

const CHANNEL_WORDS = new Map<string, Channel>([
  ['', 'email'],
  ['email', 'email'],
  ['e-mail', 'email'],
  ['e_mail', 'email'],
  ['sms', 'sms'],
  ['text', 'sms'],
  ['phone', 'phone'],
  ['telephone', 'phone'],
  ['call', 'phone'],
  ['post', 'post'],
  ['postal', 'post'],
  ['letter', 'post'],
]);

export function parseChannel(word: string): Channel | undefined {
  // Every key is trimmed lower case: a raw word that is a key normalizes to itself.
  return CHANNEL_WORDS.get(word) ?? CHANNEL_WORDS.get(word.trim().toLowerCase());
}

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATETIME = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/**
 * stated_at: ISO 8601 date ("2024-03-01" = 00:00Z) or date-time ("2024-03-01T10:20:30+02:00",
 * a space instead of T accepted; no offset = UTC). '' -> null. Returns undefined if unparseable.
 */
export function parseStatedAt(raw: string): string | null | undefined {
  const s = raw.trim();
  if (s === '') return null;
  let m = DATE.exec(s);
  if (m) return isoOf(m[1], m[2], m[3], '00', '00', '00', '', 'Z');
  m = DATETIME.exec(s);
  if (m) return isoOf(m[1], m[2], m[3], m[4], m[5], m[6] ?? '00', m[7] ?? '', (m[8] ?? 'Z').toUpperCase());
  return undefined;
}

function isoOf(y = '', mo = '', d = '', h = '', mi = '', sec = '', frac: string, zone: string): string | undefined {
  const [Y, M, D, H, I, S] = [y, mo, d, h, mi, sec].map(Number) as [number, number, number, number, number, number];
  if (M < 1 || M > 12 || H > 23 || I > 59 || S > 59) return undefined;
  const day = new Date(Date.UTC(Y, M - 1, D));
  if (day.getUTCDate() !== D || day.getUTCMonth() !== M - 1) return undefined;
  let offset = zone;
  if (offset !== 'Z') {
    const z = offset.replace(':', '');
    offset = `${z.slice(0, 3)}:${z.length > 3 ? z.slice(3) : '00'}`;
  }
  const ms = frac ? frac.slice(0, 4).padEnd(4, '0') : '.000';
  const t = Date.parse(`${y}-${mo}-${d}T${h}:${mi}:${sec}${ms}${offset}`);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/** Purpose names of the file <-> canonical ids, from settings.purposes. */
export interface PurposeMap {
  /** Canonical id for a file value, or undefined if unmapped. */
  canonical(native: string): string | undefined;
  /** The value to write in the file for a canonical id, or undefined if the file cannot say it. */
  native(canonical: string): string | undefined;
  /** Canonical ids the map can express, besides "*". */
  mapped(): string[];
}

export function purposeMap(map: Readonly<Record<string, string>>): PurposeMap {
  const toCanonical = new Map<string, string>();
  const toNative = new Map<string, string>();
  for (const [native, canonical] of Object.entries(map)) {
    toCanonical.set(native.trim().toLowerCase(), canonical);
    if (!toNative.has(canonical)) toNative.set(canonical, native);
  }
  const seen = new Map<string, string | undefined>();
  return {
    canonical(native) {
      if (seen.has(native)) return seen.get(native);
      const key = native.trim().toLowerCase();
      const canonical = toCanonical.get(key) ?? (key === '*' || key === 'all' || key === '' ? ALL_PURPOSES : undefined);
      if (seen.size < 1000) seen.set(native, canonical);
      return canonical;
    },
    native: (canonical) => toNative.get(canonical) ?? (canonical === ALL_PURPOSES ? ALL_PURPOSES : undefined),
    mapped: () => [...new Set(toNative.keys())].filter((p) => p !== ALL_PURPOSES),
  };
}

export type RowKind = 'consent' | 'suppression' | 'erasure' | 'marker';

/** One valid row in canonical terms. */
export interface RowFact {
  line: number;
  email: string;
  kind: RowKind;
  channel: Channel;
  purpose: string;
  state: ConsentState;
  strength: Strength;
  statedAt: string | null;
  evidence: string | null;
  reason: SuppressionReason | null;
}

export type RowResult = { ok: true; fact: RowFact } | { ok: false; reason: string; email: string | null } | { ok: 'blank' };

export interface RowContext {
  columns: HeaderMap;
  purposes: PurposeMap;
  channels: ReadonlySet<Channel>;
}

const cell = (fields: readonly string[], i: number | undefined): string => (i === undefined ? '' : (fields[i] ?? ''));

// One-entry caches: the rows of a person usually sit together and repeat the address and the date.
let lastEmailRaw: string | undefined;
let lastEmail: ReturnType<typeof normalizeEmail> = { ok: false, reason: '' };
let lastStatedRaw: string | undefined;
let lastStated: string | null | undefined;

function emailOf(raw: string): ReturnType<typeof normalizeEmail> {
  if (raw !== lastEmailRaw) {
    lastEmail = normalizeEmail(raw);
    lastEmailRaw = raw;
  }
  return lastEmail;
}

function statedAtOf(raw: string): string | null | undefined {
  if (raw !== lastStatedRaw) {
    lastStated = parseStatedAt(raw);
    lastStatedRaw = raw;
  }
  return lastStated;
}

function isBlank(fields: readonly string[]): boolean {
  for (let i = 0; i < fields.length; i++) if ((fields[i] as string).trim() !== '') return false;
  return true;
}

function fact(line: number, email: string, kind: RowKind, channel: Channel, purpose: string, state: ConsentState, strength: Strength, statedAt: string | null, evidence: string | null, reason: SuppressionReason | null): RowResult {
  return { ok: true, fact: { line, email, kind, channel, purpose, state, strength, statedAt, evidence, reason } };
}

/** Interpret one data row; malformed rows come back with a reason (and the email if it was valid). */
export function interpretRow(fields: readonly string[], line: number, ctx: RowContext): RowResult {
  if (isBlank(fields)) return { ok: 'blank' };
  const { columns } = ctx;
  const emailRaw = cell(fields, columns.email);
  const e = emailOf(emailRaw);
  if (!e.ok) return { ok: false, reason: `invalid email ${JSON.stringify(emailRaw)}: ${e.reason}`, email: null };
  const email = e.email;
  const stateRaw = cell(fields, columns.state);
  const meaning = stateMeaning(stateRaw);
  if (!meaning) return { ok: false, reason: `unknown state ${JSON.stringify(stateRaw)}`, email };
  const channelRaw = cell(fields, columns.channel);
  const channel = parseChannel(channelRaw);
  if (!channel) return { ok: false, reason: `unknown channel ${JSON.stringify(channelRaw)}`, email };
  if (!ctx.channels.has(channel)) return { ok: false, reason: `channel "${channel}" is not configured for this connector (settings.channels)`, email };
  const statedRaw = cell(fields, columns.stated_at);
  const statedAt = statedAtOf(statedRaw);
  if (statedAt === undefined) return { ok: false, reason: `unparseable stated_at ${JSON.stringify(statedRaw)} (expected an ISO 8601 date or date-time)`, email };
  const evidenceRaw = cell(fields, columns.evidence).trim();
  const evidence = evidenceRaw === '' ? null : evidenceRaw;

  if (meaning.kind === 'suppression') {
    return fact(line, email, 'suppression', channel, ALL_PURPOSES, meaning.reason === 'complaint' ? 'denied' : 'unknown', 'explicit', statedAt, evidence, meaning.reason);
  }
  if (meaning.kind === 'erasure') return fact(line, email, 'erasure', channel, ALL_PURPOSES, 'denied', 'explicit', statedAt, evidence, null);
  if (meaning.state === 'denied' && evidence?.startsWith(SUPPRESSION_MARKER)) {
    return fact(line, email, 'marker', channel, ALL_PURPOSES, 'denied', 'explicit', statedAt, evidence, 'blocked');
  }
  const purposeRaw = cell(fields, columns.purpose);
  const purpose = ctx.purposes.canonical(purposeRaw);
  if (purpose === undefined) {
    const known = ['*', ...ctx.purposes.mapped()].join(', ');
    return { ok: false, reason: `purpose ${JSON.stringify(purposeRaw)} is not mapped (settings.purposes; canonical ids available: ${known})`, email };
  }
  const strength: Strength = meaning.state === 'denied' || (meaning.state === 'granted' && statedAt !== null && evidence !== null) ? 'explicit' : 'implicit';
  return fact(line, email, 'consent', channel, purpose, meaning.state, strength, statedAt, evidence, null);
}

/** The observation a row states (null for consentd's own suppression markers). */
export function toObservationInput(f: RowFact, source: string, reference: string): ObservationInput | null {
  if (f.kind === 'marker') return null;
  return {
    subject: f.email,
    source,
    recordId: f.email,
    kind: f.kind === 'suppression' ? 'suppression' : f.kind === 'erasure' ? 'erasure' : 'consent',
    channel: f.channel,
    purpose: f.purpose,
    state: f.state,
    strength: f.strength,
    statedAt: f.statedAt,
    how: 'import',
    reference,
    evidence: f.evidence,
    reason: f.reason,
  };
}

const RESTRICTIVENESS: Record<ConsentState, number> = { unknown: 0, granted: 1, denied: 2 };

/**
 * Record snapshots of subjects, merge-safe: a scope keeps the most restrictive state across the
 * subject's rows (denied > granted > unknown); a channel is suppressed if any row suppresses it.
 */
export class SnapshotBuilder {
  private readonly bySubject = new Map<string, { consent: Record<string, ConsentState>; suppressed: Record<string, boolean> }>();
  constructor(private readonly connectorId: string) {}

  add(f: RowFact): void {
    let s = this.bySubject.get(f.email);
    if (!s) {
      s = { consent: {}, suppressed: {} };
      this.bySubject.set(f.email, s);
    }
    if (f.kind === 'consent') {
      const key = scopeKey(f.channel, f.purpose);
      const prev = s.consent[key];
      if (prev === undefined || RESTRICTIVENESS[f.state] > RESTRICTIVENESS[prev]) s.consent[key] = f.state;
    } else if (f.kind === 'suppression' || f.kind === 'marker') {
      s.suppressed[f.channel] = true;
    }
  }

  get size(): number {
    return this.bySubject.size;
  }

  get(subject: string): RecordSnapshot | undefined {
    const s = this.bySubject.get(subject);
    return s && { connectorId: this.connectorId, recordId: subject, subject, consent: { ...s.consent }, suppressed: { ...s.suppressed }, meta: {} };
  }

  snapshots(): RecordSnapshot[] {
    return [...this.bySubject.keys()].map((k) => this.get(k) as RecordSnapshot);
  }
}
