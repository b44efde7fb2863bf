import type { ChannelSuppression, Decision, Permission } from '../../model/index.js';

/*
 * How a decision is stored (decisions.decision): compact, since every subject has one (a million
 * subjects wrote ~900 MB as JSON objects). A JSON array:
 *   [2, [[channel, purpose, state, rule, decidedBy, statedAt, stale 0|1], ...],
 *       [[channel, reason, decidedBy, statedAt], ...], erasureRequested 0|1]
 * The subject is the row's key. Rows written before this format hold the Decision as a JSON
 * object; both read back the same.
 */

type PermissionRow = [Permission['channel'], string, Permission['state'], Permission['rule'], string | null, string | null, 0 | 1];
type SuppressionRow = [ChannelSuppression['channel'], ChannelSuppression['reason'], string, string | null];
type DecisionRow = [2, PermissionRow[], SuppressionRow[], 0 | 1];

export function encodeDecision(d: Decision): string {
  const p: PermissionRow[] = d.permissions.map((x) => [x.channel, x.purpose, x.state, x.rule, x.decidedBy, x.statedAt, x.stale ? 1 : 0]);
  const s: SuppressionRow[] = d.suppressions.map((x) => [x.channel, x.reason, x.decidedBy, x.statedAt]);
  const row: DecisionRow = [2, p, s, d.erasureRequested ? 1 : 0];
  return JSON.stringify(row);
}

export function decodeDecision(subject: string, json: string): Decision {
  const v = JSON.parse(json) as DecisionRow | Decision;
  if (!Array.isArray(v)) return v;
  const [, p, s, e] = v;
  return {
    subject,
    permissions: p.map(([channel, purpose, state, rule, decidedBy, statedAt, stale]) => ({ channel, purpose, state, rule, decidedBy, statedAt, stale: stale === 1 })),
    suppressions: s.map(([channel, reason, decidedBy, statedAt]) => ({ channel, reason, decidedBy, statedAt })),
    erasureRequested: e === 1,
  };
}
