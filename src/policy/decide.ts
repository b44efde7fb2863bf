import {
  ALL_PURPOSES,
  CHANNELS,
  type Channel,
  type ChannelSuppression,
  type Decision,
  type Observation,
  type Permission,
  type RuleId,
  type SuppressionReason,
} from '../model/index.js';

/**
 * Pure policy: the canonical state of a subject as a function of the *set* of its observations
 * (DESIGN.md section 2). No I/O, no clock: `now` is passed in.
 */
export interface PolicyOptions {
  /** Canonical purposes declared in config (e.g. newsletter, product_updates). */
  purposes: readonly string[];
  /** observation.source values allowed to grant (rule 1): connector ids with grants:true, plus 'cli'/'api'. */
  grantSources: ReadonlySet<string>;
  /** Rule 3 window: a grant and a denial this close (or closer) resolve to denial. */
  clockSkewMs: number;
  /** Rule 9: explicit grants older than this are stale; null = never stale. */
  reconfirmAfterMs: number | null;
  /** Rule 9: stale grants are revoked (denied) only if configured. */
  revokeStale: boolean;
  now: Date;
}

/** Suppression reason used when a suppression observation carries none (the schema allows null). */
export const DEFAULT_SUPPRESSION_REASON: SuppressionReason = 'blocked';

// ---------------------------------------------------------------------------------------------
// Ordering helpers. Every choice between observations is total (statedAt, then id), so the
// result never depends on input order (rule 7).

/** statedAt as epoch ms, or null for "no time". */
export function statedMs(o: Pick<Observation, 'statedAt'>): number | null {
  if (o.statedAt === null) return null;
  const ms = Date.parse(o.statedAt);
  return Number.isNaN(ms) ? null : ms;
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/*
 * latest / earliest: the extreme observation by statedAt then id; `nullAs` says where a missing
 * time sorts: +Infinity for denials (a denial with no time always stands) and suppressions sorted
 * last, -Infinity for grants (a grant with no time is the weakest). Each time is parsed once.
 */
function latest(obs: readonly Observation[], nullAs: number): Observation | undefined {
  let best: Observation | undefined;
  let bestT = 0;
  for (const o of obs) {
    const t = statedMs(o) ?? nullAs;
    if (best === undefined || t > bestT || (t === bestT && cmpStr(o.id, best.id) > 0)) {
      best = o;
      bestT = t;
    }
  }
  return best;
}

function earliest(obs: readonly Observation[], nullAs: number): Observation | undefined {
  let best: Observation | undefined;
  let bestT = 0;
  for (const o of obs) {
    const t = statedMs(o) ?? nullAs;
    if (best === undefined || t < bestT || (t === bestT && cmpStr(o.id, best.id) < 0)) {
      best = o;
      bestT = t;
    }
  }
  return best;
}

function channelIndex(c: Channel): number {
  return CHANNELS.indexOf(c);
}

/** Permissions order: channel (CHANNELS order), then '*', then purpose id. */
export function comparePermissionScope(a: { channel: Channel; purpose: string }, b: { channel: Channel; purpose: string }): number {
  const c = channelIndex(a.channel) - channelIndex(b.channel);
  if (c !== 0) return c;
  if (a.purpose === b.purpose) return 0;
  if (a.purpose === ALL_PURPOSES) return -1;
  if (b.purpose === ALL_PURPOSES) return 1;
  return cmpStr(a.purpose, b.purpose);
}

// ---------------------------------------------------------------------------------------------
// Classification of observations.

/** Replaying an observation changes nothing (rule 7): keep one per id, chosen independently of order. */
export function dedupeObservations(observations: readonly Observation[]): Observation[] {
  const byId = new Map<string, Observation>();
  for (const o of observations) {
    const seen = byId.get(o.id);
    // Same id = same statement; keep the earliest observedAt (then the smaller JSON) so the choice is order-free.
    if (seen === undefined || cmpStr(o.observedAt, seen.observedAt) < 0 || (o.observedAt === seen.observedAt && cmpStr(JSON.stringify(o), JSON.stringify(seen)) < 0)) {
      byId.set(o.id, o);
    }
  }
  return [...byId.values()].sort((a, b) => cmpStr(a.id, b.id));
}

/** Rule 5: a spam complaint is also an explicit denial of (channel, *). */
export function isComplaint(o: Observation): boolean {
  return o.kind === 'suppression' && o.reason === 'complaint';
}

/** Consent observations on the channel that speak about purpose P: P itself or '*' (for P='*' only '*'). */
export function relevantConsent(obs: readonly Observation[], channel: Channel, purpose: string): Observation[] {
  return obs.filter((o) => o.kind === 'consent' && o.channel === channel && (o.purpose === purpose || o.purpose === ALL_PURPOSES));
}

/** Denials for a scope: any denied consent statement (any strength, any source) plus complaints on the channel. */
export function denialsFor(obs: readonly Observation[], channel: Channel, purpose: string): Observation[] {
  const denials = relevantConsent(obs, channel, purpose).filter((o) => o.state === 'denied');
  for (const o of obs) if (isComplaint(o) && o.channel === channel) denials.push(o);
  return denials;
}

/** Rules 1 and 2: only an explicit grant from a source allowed to grant counts. */
export function isCountingGrant(o: Observation, grantSources: ReadonlySet<string>): boolean {
  return o.kind === 'consent' && o.state === 'granted' && o.strength === 'explicit' && grantSources.has(o.source);
}

/** Rule 4: a '*' grant counts for every purpose of the channel; a grant of P only for P. */
export function grantsFor(obs: readonly Observation[], channel: Channel, purpose: string, grantSources: ReadonlySet<string>): Observation[] {
  return relevantConsent(obs, channel, purpose).filter((o) => isCountingGrant(o, grantSources));
}

/** Which rule a standing denial is reported under: R5 for complaints, R4 when a '*' denial decides a purpose, else R1. */
export function denialRule(d: Observation, purpose: string): RuleId {
  if (isComplaint(d)) return 'R5-complaint-is-denial';
  if (purpose !== ALL_PURPOSES && d.purpose === ALL_PURPOSES) return 'R4-scope-all-purposes';
  return 'R1-denial-sticky';
}

// ---------------------------------------------------------------------------------------------
// Deciding one scope.

interface Verdict {
  state: Permission['state'];
  rule: RuleId;
  by: Observation | null;
}

/** Rules 1 and 3: latest denial D vs latest counting grant G. */
export function resolveGrantVsDenial(d: Observation, g: Observation, purpose: string, clockSkewMs: number): Verdict {
  const dt = statedMs(d);
  const gt = statedMs(g);
  if (dt === null || gt === null) return { state: 'denied', rule: 'R3-doubt-favours-denial', by: d };
  if (gt > dt + clockSkewMs) return { state: 'granted', rule: 'R1-later-explicit-grant', by: g };
  if (Math.abs(gt - dt) <= clockSkewMs) return { state: 'denied', rule: 'R3-doubt-favours-denial', by: d };
  return { state: 'denied', rule: denialRule(d, purpose), by: d };
}

function decideScope(obs: readonly Observation[], channel: Channel, purpose: string, opts: PolicyOptions): Permission {
  const d = latest(denialsFor(obs, channel, purpose), Number.POSITIVE_INFINITY);
  const g = latest(grantsFor(obs, channel, purpose, opts.grantSources), Number.NEGATIVE_INFINITY);

  let v: Verdict;
  if (d === undefined && g === undefined) {
    // Rule 2: something was said (implicit, unknown, or from a source not allowed to grant) but it is not consent.
    // decidedBy names the latest such statement so the explanation can point at it.
    const said = latest(relevantConsent(obs, channel, purpose), Number.NEGATIVE_INFINITY);
    v = said === undefined ? { state: 'unknown', rule: 'no-evidence', by: null } : { state: 'unknown', rule: 'R2-absence-not-consent', by: said };
  } else if (g === undefined) {
    v = { state: 'denied', rule: denialRule(d as Observation, purpose), by: d as Observation };
  } else if (d === undefined) {
    v = { state: 'granted', rule: 'R1-later-explicit-grant', by: g };
  } else {
    v = resolveGrantVsDenial(d, g, purpose, opts.clockSkewMs);
  }

  const perm: Permission = {
    channel,
    purpose,
    state: v.state,
    rule: v.rule,
    decidedBy: v.by?.id ?? null,
    statedAt: v.by?.statedAt ?? null,
    stale: false,
  };
  return v.state === 'granted' ? applyReconfirmation(perm, opts) : perm;
}

/**
 * Rule 9: an explicit grant older than reconfirmAfter is stale; revoked only when configured.
 * A grant with no statedAt is never stale: there is nothing to measure its age against.
 */
export function applyReconfirmation(perm: Permission, opts: Pick<PolicyOptions, 'reconfirmAfterMs' | 'revokeStale' | 'now'>): Permission {
  if (perm.state !== 'granted' || opts.reconfirmAfterMs === null || perm.statedAt === null) return perm;
  const at = Date.parse(perm.statedAt);
  if (Number.isNaN(at) || opts.now.getTime() - at <= opts.reconfirmAfterMs) return perm;
  if (!opts.revokeStale) return { ...perm, stale: true };
  return { ...perm, state: 'denied', rule: 'R9-stale-grant-revoked', stale: true };
}

// ---------------------------------------------------------------------------------------------
// Scopes, suppressions, erasure.

/** Channels mentioned by any consent or suppression observation, in CHANNELS order. */
function channelsOf(obs: readonly Observation[]): Channel[] {
  const set = new Set<Channel>();
  for (const o of obs) if (o.kind === 'consent' || o.kind === 'suppression') set.add(o.channel);
  return [...set].sort((a, b) => channelIndex(a) - channelIndex(b));
}

/** '*', every configured purpose, and any other purpose the channel's observations mention. */
function purposesOf(obs: readonly Observation[], channel: Channel, configured: readonly string[]): string[] {
  const set = new Set<string>([ALL_PURPOSES, ...configured]);
  for (const o of obs) if ((o.kind === 'consent' || o.kind === 'suppression') && o.channel === channel) set.add(o.purpose);
  return [...set].sort((a, b) => comparePermissionScope({ channel, purpose: a }, { channel, purpose: b }));
}

/** Rule 5: suppressions are sticky, so the earliest suppression of a channel decides it (no time sorts last). */
export function decideSuppressions(obs: readonly Observation[]): ChannelSuppression[] {
  const out: ChannelSuppression[] = [];
  for (const channel of CHANNELS) {
    const first = earliest(
      obs.filter((o) => o.kind === 'suppression' && o.channel === channel),
      Number.POSITIVE_INFINITY,
    );
    if (first === undefined) continue;
    out.push({ channel, reason: first.reason ?? DEFAULT_SUPPRESSION_REASON, decidedBy: first.id, statedAt: first.statedAt });
  }
  return out;
}

/**
 * Rule 10: an echo (Observation.echo, set by the store: the observation repeated what its record
 * already said, e.g. our own push coming back) is news to nobody and decides nothing.
 */
export function isEcho(o: Observation): boolean {
  return o.echo === true;
}

/** The observations the policy weighs: one per id (rule 7), echoes left out (rule 10). */
export function effectiveObservations(observations: readonly Observation[]): Observation[] {
  return dedupeObservations(observations).filter((o) => !isEcho(o));
}

/** The canonical state of one subject. All observations are taken to be about `subject`. */
export function decide(subject: string, observations: readonly Observation[], opts: PolicyOptions): Decision {
  const obs = effectiveObservations(observations);
  const permissions: Permission[] = [];
  for (const channel of channelsOf(obs)) {
    for (const purpose of purposesOf(obs, channel, opts.purposes)) permissions.push(decideScope(obs, channel, purpose, opts));
  }
  return {
    subject,
    permissions,
    suppressions: decideSuppressions(obs),
    erasureRequested: obs.some((o) => o.kind === 'erasure'),
  };
}
