import type { Channel, ConsentState, Decision, Observation, RuleId, SuppressionReason } from '../model/index.js';
import { dedupeObservations, isComplaint, isEcho, relevantConsent, statedMs } from './decide.js';

/** One line per rule, for `consentd explain` and the admin API. */
export const RULE_TEXT: Record<RuleId, string> = {
  'no-evidence': 'Unknown: nothing was ever said about this scope, and absence is not consent (rule 2)',
  'R1-denial-sticky': 'Denied: a denial stands until a later explicit grant from a source allowed to grant (rule 1)',
  'R1-later-explicit-grant': 'Granted: an explicit grant from a source allowed to grant came later than every denial (rule 1)',
  'R2-absence-not-consent':
    'Unknown: only implicit statements, unknown states or grants from sources not allowed to grant were seen, and they are not consent (rule 2)',
  'R3-doubt-favours-denial': 'Denied: a grant and a denial fall within the clock-skew window, or one has no time, so doubt favours denial (rule 3)',
  'R4-scope-all-purposes': 'Denied: a denial of all purposes (*) on this channel denies this purpose until a later explicit grant of it (rule 4)',
  'R5-complaint-is-denial': 'Denied: a spam complaint is an explicit denial of all marketing on the channel (rule 5)',
  'R9-stale-grant-revoked': 'Denied: the explicit grant is older than reconfirmAfter and stale grants are revoked by configuration (rule 9)',
};

/** Sentence for a channel suppression (suppressions have no RuleId of their own). */
export const SUPPRESSION_TEXT: Record<SuppressionReason, string> = {
  hard_bounce: 'Suppressed: a hard bounce in one mailing platform suppresses the address in every platform (rule 5)',
  invalid_address: 'Suppressed: an invalid address in one mailing platform suppresses it in every platform (rule 5)',
  complaint: 'Suppressed: a spam complaint suppresses the address in every platform and is also a denial (rule 5)',
  blocked: 'Suppressed: a block in one mailing platform suppresses the address in every platform (rule 5)',
};

/** Mark of an echo in a history (rule 10): it is kept for the audit and never weighed. */
export const ECHO_TEXT = '(echo of our push / no change: ignored)';

/** Extra sentence appended when a permission is granted but stale and not revoked. */
export const STALE_TEXT = 'Stale: the explicit grant is older than reconfirmAfter and should be reconfirmed (rule 9)';

export interface PermissionExplanation {
  channel: Channel;
  purpose: string;
  state: ConsentState;
  rule: RuleId;
  text: string;
  stale: boolean;
  /** The observation that decided it; null for no-evidence (or if it is no longer among the observations). */
  decidedBy: Observation | null;
  /**
   * Every observation that speaks about this scope, sorted by statedAt (no time last), then id.
   * Echoes (`echo: true`, rule 10) are listed too, for the audit; they never decide.
   */
  relevant: Observation[];
}

export interface SuppressionExplanation {
  channel: Channel;
  reason: SuppressionReason;
  text: string;
  decidedBy: Observation | null;
  relevant: Observation[];
}

export interface DecisionExplanation {
  subject: string;
  erasureRequested: boolean;
  /** The erasure requests, sorted like `relevant`. */
  erasure: Observation[];
  permissions: PermissionExplanation[];
  suppressions: SuppressionExplanation[];
}

function byStatedAt(a: Observation, b: Observation): number {
  const ta = statedMs(a) ?? Number.POSITIVE_INFINITY;
  const tb = statedMs(b) ?? Number.POSITIVE_INFINITY;
  if (ta !== tb) return ta < tb ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * Structured, JSON-serializable reasoning behind a decision (rule 8). Data only: the CLI
 * and the API format it.
 */
export function explainDecision(decision: Decision, observations: readonly Observation[]): DecisionExplanation {
  const obs = dedupeObservations(observations);
  // The winner is always among what the policy weighed: never an echo.
  const byId = new Map(obs.filter((o) => !isEcho(o)).map((o) => [o.id, o] as const));
  const find = (id: string | null): Observation | null => (id === null ? null : (byId.get(id) ?? null));

  const permissions = decision.permissions.map((p): PermissionExplanation => {
    const relevant = [...relevantConsent(obs, p.channel, p.purpose), ...obs.filter((o) => isComplaint(o) && o.channel === p.channel)].sort(byStatedAt);
    const text = p.stale && p.state === 'granted' ? `${RULE_TEXT[p.rule]}. ${STALE_TEXT}` : RULE_TEXT[p.rule];
    return { channel: p.channel, purpose: p.purpose, state: p.state, rule: p.rule, text, stale: p.stale, decidedBy: find(p.decidedBy), relevant };
  });

  const suppressions = decision.suppressions.map(
    (s): SuppressionExplanation => ({
      channel: s.channel,
      reason: s.reason,
      text: SUPPRESSION_TEXT[s.reason],
      decidedBy: find(s.decidedBy),
      relevant: obs.filter((o) => o.kind === 'suppression' && o.channel === s.channel).sort(byStatedAt),
    }),
  );

  return {
    subject: decision.subject,
    erasureRequested: decision.erasureRequested,
    erasure: obs.filter((o) => o.kind === 'erasure').sort(byStatedAt),
    permissions,
    suppressions,
  };
}
