import type { ChannelSuppression, Decision, Permission } from '../../model/index.js';

/*
 * How a decision is stored (decisions.decision): compact, since every subject has one. A JSON array:
 *   [3, [[channel, purposes, state, rule, decidedBy, statedAt, stale 0|1], ...],
 *       [[channel, reason, decidedBy, statedAt], ...], erasureRequested 0|1]
 * Consecutive permissions that differ only in their purpose share one entry (`purposes` is then an
 * array; a lone purpose stays a string, so no row is larger than in format 2): decide() gives every
 * purpose of a channel its own permission, and they mostly agree (one observation decided them
 * all), so a typical row holds one entry per channel instead of one per purpose. Order is kept, so
 * a decision reads back exactly as it was decided.
 * Measured at 1M people (bench/reconcile): the decision text averaged 406 bytes in format 2 (one
 * entry per permission) and 194 bytes in format 3.
 * The subject is the row's key. Rows written in format 2 ([2, [[channel, purpose, state, rule,
 * decidedBy, statedAt, stale], ...], ...]) or, before it, as a JSON Decision object read back the same.
 */

type Stale = 0 | 1;
type PermissionRowV2 = [Permission['channel'], string, Permission['state'], Permission['rule'], string | null, string | null, Stale];
type PermissionGroup = [Permission['channel'], string | string[], Permission['state'], Permission['rule'], string | null, string | null, Stale];
type SuppressionRow = [ChannelSuppression['channel'], ChannelSuppression['reason'], string, string | null];
type DecisionRowV2 = [2, PermissionRowV2[], SuppressionRow[], 0 | 1];
type DecisionRowV3 = [3, PermissionGroup[], SuppressionRow[], 0 | 1];

function sameButPurpose(g: PermissionGroup, p: Permission): boolean {
  return g[0] === p.channel && g[2] === p.state && g[3] === p.rule && g[4] === p.decidedBy && g[5] === p.statedAt && g[6] === (p.stale ? 1 : 0);
}

export function encodeDecision(d: Decision): string {
  const groups: PermissionGroup[] = [];
  let last: PermissionGroup | undefined;
  for (const p of d.permissions) {
    if (last !== undefined && sameButPurpose(last, p)) {
      const purposes = last[1];
      if (typeof purposes === 'string') last[1] = [purposes, p.purpose];
      else purposes.push(p.purpose);
      continue;
    }
    last = [p.channel, p.purpose, p.state, p.rule, p.decidedBy, p.statedAt, p.stale ? 1 : 0];
    groups.push(last);
  }
  const s: SuppressionRow[] = d.suppressions.map((x) => [x.channel, x.reason, x.decidedBy, x.statedAt]);
  const row: DecisionRowV3 = [3, groups, s, d.erasureRequested ? 1 : 0];
  return JSON.stringify(row);
}

/** A format-2 row is a format-3 row whose every entry holds one purpose: one loop reads both. */
function permissionsOf(row: DecisionRowV2 | DecisionRowV3): Permission[] {
  const out: Permission[] = [];
  for (const [channel, purposes, state, rule, decidedBy, statedAt, stale] of row[1]) {
    for (const purpose of typeof purposes === 'string' ? [purposes] : purposes) out.push({ channel, purpose, state, rule, decidedBy, statedAt, stale: stale === 1 });
  }
  return out;
}

export function decodeDecision(subject: string, json: string): Decision {
  const v = JSON.parse(json) as DecisionRowV2 | DecisionRowV3 | Decision;
  if (!Array.isArray(v)) return v;
  const [, , s, e] = v;
  return {
    subject,
    permissions: permissionsOf(v),
    suppressions: s.map(([channel, reason, decidedBy, statedAt]) => ({ channel, reason, decidedBy, statedAt })),
    erasureRequested: e === 1,
  };
}
