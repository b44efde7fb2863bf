import type { ConnectorCapabilities, Scope } from '../connectors/contract.js';
import { ALL_PURPOSES, changeKey, scopeKey, type Change, type Channel, type ChannelSuppression, type Decision, type Permission, type RecordSnapshot } from '../model/index.js';

/** A connector the planner may send changes to, with what it can express. */
export interface PlanTarget {
  connectorId: string;
  capabilities: ConnectorCapabilities;
}

type ChangeBody = Omit<Change, 'key'>;

/** The change `op` on the context's record, keyed; built in one literal (every change of a plan comes through here). */
function changeOf(
  ctx: RecordPlanContext,
  op: Change['op'],
  channel: Channel,
  purpose: string,
  target: Change['target'],
  rule: Change['rule'],
  decidedBy: Change['decidedBy'],
): Change {
  const { record } = ctx;
  const body: ChangeBody = { connectorId: record.connectorId, recordId: record.recordId, subject: ctx.decision.subject, meta: record.meta, op, channel, purpose, target, rule, decidedBy };
  return { key: changeKey(body), ...body };
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Output order: connector, record, op, channel, purpose (then key, so it is total). */
export function compareChanges(a: Change, b: Change): number {
  return (
    cmpStr(a.connectorId, b.connectorId) ||
    cmpStr(a.recordId, b.recordId) ||
    cmpStr(a.op, b.op) ||
    cmpStr(a.channel, b.channel) ||
    cmpStr(a.purpose, b.purpose) ||
    cmpStr(a.key, b.key)
  );
}

/**
 * scopeKey of each scope of a capability list, built once per list (the lists live as long as
 * their connector): the planner looks keys up for every record of every subject.
 */
const SCOPE_KEYS = new WeakMap<readonly Scope[], readonly string[]>();
function scopeKeysOf(scopes: readonly Scope[]): readonly string[] {
  let keys = SCOPE_KEYS.get(scopes);
  if (keys === undefined) {
    keys = scopes.map((s) => scopeKey(s.channel, s.purpose));
    SCOPE_KEYS.set(scopes, keys);
  }
  return keys;
}
const ALL_KEYS = new Map<string, string>();
function allPurposesKey(channel: Channel): string {
  let key = ALL_KEYS.get(channel);
  if (key === undefined) {
    key = scopeKey(channel, ALL_PURPOSES);
    ALL_KEYS.set(channel, key);
  }
  return key;
}

interface RecordPlanContext {
  decision: Decision;
  record: RecordSnapshot;
  caps: ConnectorCapabilities;
  /** The record was synthesized for a platform that accepts bare addresses: only denials and suppressions. */
  synthesized: boolean;
  permissions: ReadonlyMap<string, Permission>;
  suppressions: ReadonlyMap<Channel, ChannelSuppression>;
}

/**
 * Rule 6: erase where the platform can; otherwise anonymize-and-suppress: suppress every
 * suppression channel and deny every consent scope (skipping what the record already says,
 * so the plan converges). A platform that merely accepts bare addresses and does not hold the
 * subject gets nothing: pushing the address of a person who asked to be forgotten into a
 * system that never had it would be the opposite of erasure.
 */
function planErasure(ctx: RecordPlanContext, out: Change[]): void {
  if (ctx.synthesized) return;
  if (ctx.caps.erase) {
    // An erase is about the whole record; channel/purpose are required by Change, so it is filed under (email, *).
    out.push(changeOf(ctx, 'erase', 'email', '*', null, null, null));
    return;
  }
  for (const channel of ctx.caps.suppression) {
    if (ctx.record.suppressed[channel] === true) continue;
    out.push(changeOf(ctx, 'suppress', channel, '*', null, null, null));
  }
  for (const scope of ctx.caps.consent) {
    if (ctx.record.consent[scopeKey(scope.channel, scope.purpose)] === 'denied') continue;
    out.push(changeOf(ctx, 'set_consent', scope.channel, scope.purpose, 'denied', null, null));
  }
}

/** Consent scopes: push denials always, grants only where the platform takes them; unknown never moves anything. */
function planConsent(ctx: RecordPlanContext, out: Change[]): void {
  const scopes = ctx.caps.consent;
  const keys = scopeKeysOf(scopes);
  for (let i = 0; i < scopes.length; i++) {
    const scope = scopes[i] as Scope;
    const key = keys[i] as string;
    const perm = ctx.permissions.get(key);
    if (perm === undefined || perm.state === 'unknown') continue;
    const current = ctx.record.consent[key] ?? 'unknown';
    if (current === perm.state) continue;
    if (perm.state === 'granted' && (!ctx.caps.pushGrants || ctx.synthesized)) continue;
    // A bare-address platform is a suppression list: "granted" there only means "not listed".
    // A grant lifts a denial it holds; it never turns "unknown" into a listing, so an address
    // that entered the list through a pushed denial does not attract grants a round later.
    if (perm.state === 'granted' && ctx.caps.acceptsUnknownAddresses && current !== 'denied') continue;
    // A suppressed channel (bounce, complaint) is never re-opened by a grant: a resubscribe
    // there would mail an address that bounced or complained (rule 5 outranks consent).
    if (perm.state === 'granted' && ctx.suppressions.has(scope.channel)) continue;
    if (perm.state === 'granted' && ctx.caps.keepsChannelDenial === true && scope.purpose === ALL_PURPOSES) continue;
    if (perm.state === 'granted' && scope.purpose !== ALL_PURPOSES && coversPurposes(ctx.caps) && ctx.record.consent[allPurposesKey(scope.channel)] === 'denied') continue;
    out.push(changeOf(ctx, 'set_consent', scope.channel, scope.purpose, perm.state, perm.rule, perm.decidedBy));
  }
}

/** Rule 5: a suppression anywhere is pushed to every platform with a mechanism for that channel. */
function planSuppressions(ctx: RecordPlanContext, out: Change[]): void {
  for (const channel of ctx.caps.suppression) {
    const s = ctx.suppressions.get(channel);
    if (s === undefined || ctx.record.suppressed[channel] === true) continue;
    out.push(changeOf(ctx, 'suppress', channel, '*', null, null, s.decidedBy));
  }
}

/** The record's changes, appended to `out`. */
function planRecord(ctx: RecordPlanContext, out: Change[]): void {
  if (ctx.decision.erasureRequested) {
    planErasure(ctx, out);
    return;
  }
  planConsent(ctx, out);
  planSuppressions(ctx, out);
}

/** The snapshot planned against when a bare-address platform holds no record: the address is the record. */
export function syntheticSnapshot(connectorId: string, subject: string): RecordSnapshot {
  return { connectorId, recordId: subject, subject, consent: {}, suppressed: {}, meta: {} };
}

/**
 * Changes that make every record of the subject in every target agree with the decision.
 * Pure and deterministic: the same inputs give the same changes, keys and order.
 * Records of connectors not in `targets`, and records of another subject, are ignored.
 */
export function planSubject(decision: Decision, records: readonly RecordSnapshot[], targets: readonly PlanTarget[]): Change[] {
  const permissions = new Map(decision.permissions.map((p) => [scopeKey(p.channel, p.purpose), p] as const));
  const suppressions = new Map(decision.suppressions.map((s) => [s.channel, s] as const));
  const seenTargets = new Set<string>();
  const planned: Change[] = [];
  const plan = (record: RecordSnapshot, caps: ConnectorCapabilities, synthesized: boolean): void =>
    planRecord({ decision, record, caps, synthesized, permissions, suppressions }, planned);

  for (const target of targets) {
    if (seenTargets.has(target.connectorId)) continue;
    seenTargets.add(target.connectorId);
    let own = 0;
    for (const r of records) {
      if (r.connectorId !== target.connectorId || r.subject !== decision.subject) continue;
      own++;
      plan(r, target.capabilities, false);
    }
    if (own === 0 && target.capabilities.acceptsUnknownAddresses) plan(syntheticSnapshot(target.connectorId, decision.subject), target.capabilities, true);
  }
  if (planned.length < 2) return planned;
  // Two snapshots of the same record id can only yield the same correction twice: keep one.
  const byKey = new Map<string, Change>();
  for (const c of planned) if (!byKey.has(c.key)) byKey.set(c.key, c);
  return [...byKey.values()].sort(compareChanges);
}

/**
 * What the record looks like after the push succeeded, so the echo of our own push plans
 * nothing (rule 10). Never mutates its input; `erase` returns it unchanged (the engine drops it).
 */
/** A (channel, *) denial on this platform also denies every purpose of the channel there. */
function coversPurposes(caps: Pick<ConnectorCapabilities, 'keepsChannelDenial' | 'channelDenialCoversPurposes'>): boolean {
  return caps.keepsChannelDenial === true || caps.channelDenialCoversPurposes === true;
}

/**
 * What a record looks like after `change` was pushed. With the platform's capabilities, a
 * (channel, *) denial on a platform where it covers every purpose denies them all (so what the
 * next pull reads back is recognised as the echo of this push).
 */
export function applyChangeToSnapshot(snapshot: RecordSnapshot, change: Change, caps?: ConnectorCapabilities): RecordSnapshot {
  switch (change.op) {
    case 'set_consent': {
      if (change.target === null) return snapshot;
      const consent = { ...snapshot.consent, [scopeKey(change.channel, change.purpose)]: change.target };
      if (caps !== undefined && coversPurposes(caps) && change.purpose === ALL_PURPOSES && change.target === 'denied') {
        for (const s of caps.consent) if (s.channel === change.channel) consent[scopeKey(s.channel, s.purpose)] = 'denied';
        for (const k of Object.keys(consent)) if (k.startsWith(`${change.channel}:`)) consent[k] = 'denied';
      }
      return { ...snapshot, consent };
    }
    case 'suppress':
      return { ...snapshot, suppressed: { ...snapshot.suppressed, [change.channel]: true } };
    case 'erase':
      return snapshot;
  }
}
