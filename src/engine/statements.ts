import { ConsentdError } from '../errors.js';
import { ALL_PURPOSES, mustNormalizeEmail, toObservation, type Channel, type ObservationInput } from '../model/index.js';
import type { Engine } from './context.js';
import { reconcileSubjects, type ReconcileStats } from './reconcile.js';

/** consentd itself as a source: the CLI, or the admin API. */
export type StatementSource = 'cli' | 'api';

export interface StatementOptions {
  source?: StatementSource;
  evidence?: string | null;
  /** Reference to store with it (request id, ticket). */
  reference?: string | null;
}

export interface StatementResult {
  subject: string;
  /** Observation ids new to the ledger. */
  added: string[];
  reconcile: ReconcileStats;
}

function input(engine: Engine, subject: string, o: Pick<ObservationInput, 'kind' | 'channel' | 'purpose' | 'state'>, opts: StatementOptions): ObservationInput {
  return {
    subject,
    source: opts.source ?? 'cli',
    recordId: null,
    kind: o.kind,
    channel: o.channel,
    purpose: o.purpose,
    state: o.state,
    strength: 'explicit',
    statedAt: engine.now().toISOString(),
    how: 'manual',
    reference: opts.reference ?? null,
    evidence: opts.evidence ?? null,
    reason: null,
  };
}

async function record(engine: Engine, inputs: ObservationInput[]): Promise<StatementResult> {
  const subject = inputs[0]?.subject as string;
  const observedAt = engine.now();
  const added = await engine.store.addObservations(inputs.map((i) => toObservation(i, observedAt)));
  // The instant path: decide this person now and put the corrections in the high lane.
  const reconcile = await reconcileSubjects(engine, [subject], 'high');
  return { subject, added, reconcile };
}

function checkPurpose(engine: Engine, purpose: string): void {
  if (purpose === ALL_PURPOSES) return;
  if (!engine.config.purposes.some((p) => p.id === purpose)) {
    const known = ['*', ...engine.config.purposes.map((p) => p.id)].join(', ');
    throw new ConsentdError('USAGE', `unknown purpose "${purpose}" (declared: ${known})`);
  }
}

/** A person said no (default: all marketing by email). Throws InvalidEmailError for a bad address. */
export async function optOut(engine: Engine, email: string, scope: { channel?: Channel; purpose?: string }, opts: StatementOptions = {}): Promise<StatementResult> {
  const subject = mustNormalizeEmail(email);
  const purpose = scope.purpose ?? ALL_PURPOSES;
  checkPurpose(engine, purpose);
  return record(engine, [input(engine, subject, { kind: 'consent', channel: scope.channel ?? 'email', purpose, state: 'denied' }, opts)]);
}

/** A person said yes to one purpose; evidence is required (absence is not consent, rule 2). */
export async function grant(engine: Engine, email: string, scope: { channel?: Channel; purpose: string }, opts: StatementOptions & { evidence: string }): Promise<StatementResult> {
  const subject = mustNormalizeEmail(email);
  checkPurpose(engine, scope.purpose);
  if (opts.evidence.trim() === '') throw new ConsentdError('USAGE', 'a grant needs evidence (--evidence): who said yes, when, how');
  return record(engine, [input(engine, subject, { kind: 'consent', channel: scope.channel ?? 'email', purpose: scope.purpose, state: 'granted' }, opts)]);
}

/** The person asked to be forgotten (rule 6): erased in the store now, erase changes queued high. */
export async function erase(engine: Engine, email: string, opts: StatementOptions = {}): Promise<StatementResult> {
  const subject = mustNormalizeEmail(email);
  return record(engine, [input(engine, subject, { kind: 'erasure', channel: 'email', purpose: ALL_PURPOSES, state: 'denied' }, opts)]);
}
