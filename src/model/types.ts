import { z } from 'zod';
import { stableHash } from './email.js';

/** Channels a permission can be about (DESIGN.md section 1). */
export const Channel = z.enum(['email', 'sms', 'phone', 'post']);
export type Channel = z.infer<typeof Channel>;
export const CHANNELS: readonly Channel[] = Channel.options;

/** `*` means all marketing on a channel; otherwise a purpose id declared in config. */
export const ALL_PURPOSES = '*';
export const Purpose = z.string().regex(/^(\*|[a-z][a-z0-9_]{0,63})$/, 'purpose must be "*" or a lower_snake_case id');
export type Purpose = z.infer<typeof Purpose>;

export const ConsentState = z.enum(['granted', 'denied', 'unknown']);
export type ConsentState = z.infer<typeof ConsentState>;

export const Strength = z.enum(['explicit', 'implicit']);
export type Strength = z.infer<typeof Strength>;

export const How = z.enum(['pull', 'webhook', 'api', 'manual', 'preference_center', 'complaint', 'bounce', 'import']);
export type How = z.infer<typeof How>;

/** Deliverability facts: stop sending on the channel whatever the consent (policy rule 5). */
export const SuppressionReason = z.enum(['hard_bounce', 'invalid_address', 'complaint', 'blocked']);
export type SuppressionReason = z.infer<typeof SuppressionReason>;

/**
 * What kind of statement an observation is:
 * - consent: a person's yes / no / unknown for (channel, purpose);
 * - suppression: a deliverability fact for a channel (`reason` set);
 * - erasure: the person asked to be forgotten (policy rule 6).
 */
export const ObservationKind = z.enum(['consent', 'suppression', 'erasure']);
export type ObservationKind = z.infer<typeof ObservationKind>;

const IsoTime = z.iso.datetime({ offset: true });

/** An observation as a connector or the CLI produces it; the id is derived from its content. */
export const ObservationInput = z.object({
  subject: z.string().min(3),
  /** Connector id, or `cli` / `api` for statements made through consentd itself. */
  source: z.string().min(1),
  recordId: z.string().nullable(),
  kind: ObservationKind,
  channel: Channel,
  purpose: Purpose,
  state: ConsentState,
  strength: Strength,
  /** When the person said it, as the system reports it; null = unknown time (doubt favours denial). */
  statedAt: IsoTime.nullable(),
  how: How,
  /** Record id, event id, form id: where to look in the source system. */
  reference: z.string().nullable(),
  /** Free text: legal basis, capture source, IP, "signed form #123". */
  evidence: z.string().nullable(),
  reason: SuppressionReason.nullable(),
});
export type ObservationInput = z.infer<typeof ObservationInput>;

export const Observation = ObservationInput.extend({
  id: z.string(),
  observedAt: IsoTime,
  /**
   * Set by the store, never by a connector (policy rule 10, no ping-pong). An observation is news
   * only if it changes what its record says: a `consent` observation from connector C about record
   * R whose state equals the state that the stored snapshot of (C, R) already held for its scope
   * before this ingestion (the snapshot already reflects our own pushes) is an echo: of our own
   * push, or of a re-stamped time (LastModifiedDate drift). It stays in the ledger (audit) and the
   * policy ignores it. A first sighting (no snapshot, or no state for the scope) is news;
   * suppressions, erasures and statements made through consentd (CLI, admin API) are never echoes.
   * Absent when false. Not part of the content id.
   */
  echo: z.boolean().optional(),
});
export type Observation = z.infer<typeof Observation>;

/**
 * Content id of an observation: the same statement seen twice (a nightly re-pull, a webhook
 * retried by the platform) gets the same id, so replaying it changes nothing (policy rule 7).
 * observedAt is deliberately not part of it.
 */
export function observationId(o: ObservationInput): string {
  return stableHash(o.subject, o.source, o.recordId, o.kind, o.channel, o.purpose, o.state, o.strength, o.statedAt, o.how, o.reference, o.reason);
}

export function toObservation(input: ObservationInput, observedAt: Date | string): Observation {
  const at = typeof observedAt === 'string' ? observedAt : observedAt.toISOString();
  // Field by field (the fields of ObservationInput, in its order): a spread costs several times as
  // much per observation on the pull path.
  return {
    subject: input.subject,
    source: input.source,
    recordId: input.recordId,
    kind: input.kind,
    channel: input.channel,
    purpose: input.purpose,
    state: input.state,
    strength: input.strength,
    statedAt: input.statedAt,
    how: input.how,
    reference: input.reference,
    evidence: input.evidence,
    reason: input.reason,
    id: observationId(input),
    observedAt: at,
  };
}

/** The rules of DESIGN.md section 2, named in every decision. */
export const RuleId = z.enum([
  'no-evidence', // nothing said about it: unknown
  'R1-denial-sticky', // a denial stands
  'R1-later-explicit-grant', // an allowed explicit grant later than every denial
  'R2-absence-not-consent', // only implicit / unknown / not-allowed grants: unknown
  'R3-doubt-favours-denial', // grant and denial too close, or a time missing
  'R4-scope-all-purposes', // a denial of `*` decided this purpose
  'R5-complaint-is-denial', // a spam complaint denied the channel
  'R9-stale-grant-revoked', // explicit grant older than reconfirmAfter, revokeStale on
]);
export type RuleId = z.infer<typeof RuleId>;

/** Canonical state of (subject, channel, purpose). Derived, never edited. */
export const Permission = z.object({
  channel: Channel,
  purpose: Purpose,
  state: ConsentState,
  rule: RuleId,
  /** The observation that decided it; null only for `no-evidence`. */
  decidedBy: z.string().nullable(),
  statedAt: IsoTime.nullable(),
  /** Explicit grant older than reconfirmAfter (policy rule 9). */
  stale: z.boolean(),
});
export type Permission = z.infer<typeof Permission>;

export const ChannelSuppression = z.object({
  channel: Channel,
  reason: SuppressionReason,
  decidedBy: z.string(),
  statedAt: IsoTime.nullable(),
});
export type ChannelSuppression = z.infer<typeof ChannelSuppression>;

export const Decision = z.object({
  subject: z.string(),
  permissions: z.array(Permission),
  suppressions: z.array(ChannelSuppression),
  /** An erasure request is among the observations: the engine must erase. */
  erasureRequested: z.boolean(),
});
export type Decision = z.infer<typeof Decision>;

/** Key for a (channel, purpose) pair in snapshot maps: "email:*", "email:newsletter". */
export function scopeKey(channel: Channel, purpose: string): string {
  return `${channel}:${purpose}`;
}

/**
 * What one record in one system currently says, in canonical terms. Connectors produce it on
 * pull; the engine updates it to what was pushed, so the echo of our own push is a no-op.
 */
export const RecordSnapshot = z.object({
  connectorId: z.string(),
  recordId: z.string(),
  subject: z.string(),
  /** scopeKey -> what the record says now, for each scope the connector can express. */
  consent: z.record(z.string(), ConsentState),
  /** channel -> suppressed in this system. */
  suppressed: z.record(z.string(), z.boolean()),
  /** Connector-private data needed to push (object type, list id, ...). Never interpreted by core. */
  meta: z.record(z.string(), z.unknown()),
});
export type RecordSnapshot = z.infer<typeof RecordSnapshot>;

export const ChangeOp = z.enum(['set_consent', 'suppress', 'erase']);
export type ChangeOp = z.infer<typeof ChangeOp>;

/** What one record must become so its system agrees with the canonical state. */
export const Change = z.object({
  /** Idempotency key: the same correction planned twice has the same key. */
  key: z.string(),
  connectorId: z.string(),
  /** For connectors that accept bare addresses (no record yet), the normalized address. */
  recordId: z.string(),
  subject: z.string(),
  op: ChangeOp,
  channel: Channel,
  purpose: Purpose,
  /** For set_consent: the state to write. */
  target: z.enum(['granted', 'denied']).nullable(),
  rule: RuleId.nullable(),
  decidedBy: z.string().nullable(),
  meta: z.record(z.string(), z.unknown()),
});
export type Change = z.infer<typeof Change>;

export function changeKey(c: Omit<Change, 'key'>): string {
  return stableHash(c.connectorId, c.recordId, c.subject, c.op, c.channel, c.purpose, c.target, c.decidedBy);
}
