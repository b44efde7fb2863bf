/**
 * What SendGrid's suppressions mean in canonical terms. Pure functions only.
 *
 * SendGrid holds no record of consent, only of its absence: every statement is a denial or a
 * deliverability fact, never a grant (policy rule 2), except the Event Webhook's
 * `group_resubscribe` (the person clicked "resubscribe": an explicit grant of that purpose).
 *
 * - global unsubscribe            -> consent (email, *) denied, explicit, statedAt = created
 * - group suppression (mapped)    -> consent (email, purpose) denied, explicit, statedAt = created_at
 *                                    (null if SendGrid gives none: policy rule 3 then keeps it)
 * - bounce, status 5.x.x or none  -> suppression hard_bounce (a 4.x.x status: blocked, temporary)
 * - block                         -> suppression blocked
 * - spam report                   -> suppression complaint (rule 5: also a denial of (email, *))
 * - invalid email                 -> suppression invalid_address
 *
 * Snapshots (what the address says now): `email:*` denied when globally unsubscribed; a purpose
 * denied when the address is suppressed in a group mapped to it, or globally unsubscribed (no
 * group mail reaches it then). `suppressed.email` when on any list, the global unsubscribe
 * included (it is the mechanism consentd itself uses to suppress, so it must read back as
 * suppressed or the plan would never converge). Blocks count too: they sit on SendGrid's
 * suppression lists, and re-suppressing a blocked address through a global unsubscribe would
 * turn a temporary block into a permanent one.
 */
import { ALL_PURPOSES, normalizeEmail, scopeKey, type ConsentState, type ObservationInput, type RecordSnapshot, type SuppressionReason } from '../../src/model/index.js';
import type { PullReject } from '../../src/connectors/contract.js';
import type { GroupSuppression } from './groups.js';
import type { ListEntry, ListType } from './lists.js';

/** ASM group id <-> canonical purpose, from settings.purposes. */
export class PurposeMap {
  private readonly byGroup = new Map<number, string>();
  private readonly byPurpose = new Map<string, number[]>();

  constructor(purposes: Record<string, string>) {
    for (const [id, purpose] of Object.entries(purposes)) {
      const g = Number(id);
      this.byGroup.set(g, purpose);
      this.byPurpose.set(purpose, [...(this.byPurpose.get(purpose) ?? []), g]);
    }
  }

  purposeOf(groupId: number): string | undefined {
    return this.byGroup.get(groupId);
  }

  groupsOf(purpose: string): number[] {
    return this.byPurpose.get(purpose) ?? [];
  }

  /** Canonical purposes some group maps to, sorted. */
  purposes(): string[] {
    return [...this.byPurpose.keys()].sort();
  }

  groupIds(): number[] {
    return [...this.byGroup.keys()].sort((a, b) => a - b);
  }
}

export function isoFromUnix(seconds: number | null): string | null {
  if (seconds === null || !Number.isFinite(seconds) || seconds <= 0) return null;
  return new Date(seconds * 1000).toISOString();
}

/** Suppression reason of a bounce-list entry: 5.x.x (or no status) is hard; 4.x.x is temporary. */
export function bounceReason(status: string | undefined): SuppressionReason {
  return status !== undefined && /^4\./.test(status.trim()) ? 'blocked' : 'hard_bounce';
}

export const LIST_REASON: Record<Exclude<ListType, 'unsubscribes'>, SuppressionReason> = {
  bounces: 'hard_bounce',
  blocks: 'blocked',
  spam_reports: 'complaint',
  invalid_emails: 'invalid_address',
};

interface Base {
  connectorId: string;
  email: string;
  statedAt: string | null;
  how: ObservationInput['how'];
  reference: string;
  evidence: string | null;
}

export function consentObservation(b: Base, purpose: string, state: 'granted' | 'denied'): ObservationInput {
  return {
    subject: b.email,
    source: b.connectorId,
    recordId: b.email,
    kind: 'consent',
    channel: 'email',
    purpose,
    state,
    strength: 'explicit',
    statedAt: b.statedAt,
    how: b.how,
    reference: b.reference,
    evidence: b.evidence,
    reason: null,
  };
}

export function suppressionObservation(b: Base, reason: SuppressionReason): ObservationInput {
  return {
    subject: b.email,
    source: b.connectorId,
    recordId: b.email,
    kind: 'suppression',
    channel: 'email',
    purpose: ALL_PURPOSES,
    // A complaint is stated as a denial (rule 5); other deliverability facts say nothing of consent.
    state: reason === 'complaint' ? 'denied' : 'unknown',
    strength: 'explicit',
    statedAt: b.statedAt,
    how: b.how,
    reference: b.reference,
    evidence: b.evidence,
    reason,
  };
}

export type Mapped = { ok: true; email: string; observation: ObservationInput } | { ok: false; reject: PullReject };

/** One entry of a time-filtered list (unsubscribes, bounces, blocks, spam_reports, invalid_emails). */
export function mapListEntry(connectorId: string, type: ListType, e: ListEntry): Mapped {
  const n = normalizeEmail(e.email);
  if (!n.ok) return { ok: false, reject: { where: `sendgrid ${type}: ${e.email}`, reason: n.reason } };
  const detail = [e.status, e.reason].filter((x) => x !== undefined && x !== '').join(' ');
  const base: Base = {
    connectorId,
    email: n.email,
    statedAt: isoFromUnix(e.created),
    how: 'pull',
    reference: type === 'unsubscribes' ? 'asm/suppressions/global' : `suppression/${type}`,
    evidence: type === 'unsubscribes' ? 'SendGrid global unsubscribe' : `SendGrid ${type}${detail ? `: ${detail}` : ''}`,
  };
  if (type === 'unsubscribes') return { ok: true, email: n.email, observation: consentObservation(base, ALL_PURPOSES, 'denied') };
  const reason = type === 'bounces' ? bounceReason(e.status) : LIST_REASON[type];
  return { ok: true, email: n.email, observation: suppressionObservation(base, reason) };
}

/** One group suppression; null observation for a group no purpose is mapped to. */
export function mapGroupSuppression(connectorId: string, purposes: PurposeMap, s: GroupSuppression): { ok: true; email: string; observation: ObservationInput | null } | { ok: false; reject: PullReject } {
  const n = normalizeEmail(s.email);
  if (!n.ok) return { ok: false, reject: { where: `sendgrid group ${s.groupId}: ${s.email}`, reason: n.reason } };
  const purpose = purposes.purposeOf(s.groupId);
  if (purpose === undefined) return { ok: true, email: n.email, observation: null };
  const base: Base = {
    connectorId,
    email: n.email,
    statedAt: isoFromUnix(s.created),
    how: 'pull',
    reference: `asm/groups/${s.groupId}/suppressions`,
    evidence: `SendGrid unsubscribe group ${s.groupId}`,
  };
  return { ok: true, email: n.email, observation: consentObservation(base, purpose, 'denied') };
}

// ---------------------------------------------------------------------------------------------
// Snapshots: one per address, merged across lists.

const FLAG: Record<ListType, number> = { unsubscribes: 1, bounces: 2, blocks: 4, spam_reports: 8, invalid_emails: 16 };

interface AddressState {
  flags: number;
  groups: number[] | undefined;
}

/** What a builder knows: whether absence from the global list / from groups is meaningful. */
export interface Knowledge {
  /** Every global unsubscribe was read (full pull): not seen = not unsubscribed. */
  global: boolean;
  /** Every group suppression was read: not seen = not suppressed in that group. */
  groups: boolean;
}

/**
 * Per-address merge of the suppression lists. Memory: one small entry (the address and a few
 * numbers) per suppressed address of the account — bounded by its suppressions, not its contacts.
 */
export class SnapshotBuilder {
  private readonly map = new Map<string, AddressState>();

  constructor(
    private readonly connectorId: string,
    private readonly purposes: PurposeMap,
    private readonly knows: Knowledge,
  ) {}

  get size(): number {
    return this.map.size;
  }

  private state(email: string): AddressState {
    let s = this.map.get(email);
    if (s === undefined) {
      s = { flags: 0, groups: undefined };
      this.map.set(email, s);
    }
    return s;
  }

  addList(email: string, type: ListType): void {
    this.state(email).flags |= FLAG[type];
  }

  addGroup(email: string, groupId: number): void {
    const s = this.state(email);
    if (s.groups === undefined) s.groups = [groupId];
    else if (!s.groups.includes(groupId)) s.groups.push(groupId);
  }

  has(email: string): boolean {
    return this.map.has(email);
  }

  /** Addresses in a stable order (sorted), optionally only those matching. */
  emails(filter?: (email: string) => boolean): string[] {
    const out = filter ? [...this.map.keys()].filter(filter) : [...this.map.keys()];
    return out.sort();
  }

  isListed(email: string): boolean {
    return (this.map.get(email)?.flags ?? 0) !== 0;
  }

  snapshot(email: string): RecordSnapshot {
    const s = this.map.get(email) ?? { flags: 0, groups: undefined };
    const global = (s.flags & FLAG.unsubscribes) !== 0;
    const groups = s.groups ?? [];
    const consent: Record<string, ConsentState> = {};
    consent[scopeKey('email', ALL_PURPOSES)] = global ? 'denied' : this.knows.global ? 'granted' : 'unknown';
    for (const purpose of this.purposes.purposes()) {
      const inGroup = this.purposes.groupsOf(purpose).some((g) => groups.includes(g));
      consent[scopeKey('email', purpose)] = global || inGroup ? 'denied' : this.knows.global && this.knows.groups ? 'granted' : 'unknown';
    }
    const suppressed: Record<string, boolean> = {};
    if (s.flags !== 0) suppressed['email'] = true;
    else if (this.knows.global) suppressed['email'] = false;
    const lists = (Object.keys(FLAG) as ListType[]).filter((t) => (s.flags & FLAG[t]) !== 0);
    const meta: Record<string, unknown> = { lists };
    if (this.knows.groups) meta['groups'] = [...groups].sort((a, b) => a - b);
    return { connectorId: this.connectorId, recordId: email, subject: email, consent, suppressed, meta };
  }
}
