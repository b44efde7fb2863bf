import type { Change, Decision, Observation } from '../model/index.js';
import { planSubject, type PlanTarget } from '../plan/index.js';
import { decide, type PolicyOptions } from '../policy/index.js';
import type { SubjectState } from '../store/store.js';
import type { Engine } from './context.js';

export interface SubjectPlan {
  subject: string;
  decision: Decision;
  /** The changes every enabled connector's records need (erasure changes when erasure is requested). */
  changes: Change[];
  /** Source of the erasure request, when the decision asks for erasure. */
  erasureSource: string | null;
  /** The dirty version the plan was made from (SubjectState.dirty). */
  dirty?: number;
}

function erasureSource(observations: readonly Observation[]): string | null {
  const requests = observations.filter((o) => o.kind === 'erasure').sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return requests[0]?.source ?? null;
}

/** Decide one subject and plan its changes: pure (also runs in the reconcile worker thread). */
export function planState(state: SubjectState, opts: PolicyOptions, targets: readonly PlanTarget[]): SubjectPlan {
  const decision = decide(state.subject, state.observations, opts);
  const changes = planSubject(decision, state.records, targets);
  const plan: SubjectPlan = { subject: state.subject, decision, changes, erasureSource: decision.erasureRequested ? erasureSource(state.observations) : null };
  if (state.dirty !== undefined) plan.dirty = state.dirty;
  return plan;
}

/** Decide one subject and plan its changes with the engine's policy options and targets. */
export function planSubjectState(engine: Engine, state: SubjectState, opts = engine.policyOptions()): SubjectPlan {
  return planState(state, opts, engine.targets());
}
