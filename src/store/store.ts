import type { Change, Decision, Observation, RecordSnapshot } from '../model/index.js';

/** Outbox lanes: webhook-triggered opt-outs jump the nightly queue. */
export type Lane = 'high' | 'normal';

/** Outbox state machine (see outbox-states.ts for the allowed transitions). */
export type OutboxState = 'pending' | 'in_flight' | 'retry' | 'done' | 'dead' | 'superseded';

export interface EraseOptions {
  redoable?: boolean;
}

export interface CommitReconcileOptions {
  /**
   * A full reconcile's commit: the store may queue a connector's changes many to a row (the SQLite
   * store does while the connector's outbox holds nothing but erasures, e.g. a first load). They are
   * claimed and settled like any other (OutboxItem), and never pushed after a newer change.
   */
  bulk?: boolean;
}

export interface OutboxItem {
  /** What settles it (completeOutbox, retryOutbox, killOutbox): an outbox row, or a change in a batch row. */
  id: number;
  change: Change;
  lane: Lane;
  state: OutboxState;
  attempts: number;
  /** Epoch ms before which a retry is not due. */
  notBefore: number;
  lastError: string | null;
  enqueuedAt: string;
}

export interface DeadLetter {
  id: number;
  change: Change;
  reason: string;
  attempts: number;
  deadAt: string;
}

export type RunKind = 'pull_full' | 'pull_incremental' | 'reconcile' | 'apply' | 'webhook';
export type RunStatus = 'running' | 'ok' | 'failed' | 'interrupted';

export interface RunInfo {
  id: number;
  kind: RunKind;
  connectorId: string | null;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  stats: Record<string, number>;
  error: string | null;
}

/** Everything the policy and planner need about one subject. */
export interface SubjectState {
  subject: string;
  observations: Observation[];
  records: RecordSnapshot[];
  /** From dirtySubjects: the dirty version read (commitReconcile clears the flag only if it is unchanged). */
  dirty?: number;
}

export interface IngestResult {
  observationsAdded: number;
  recordsUpserted: number;
  /** Subjects of this page that match an erasure tombstone: to be erased again and reported. */
  tombstoned: RecordSnapshot[];
}

/** How a store writes what a pull brings: the name of its encoding (see page-encoding.ts). */
export type StoreEncoding = 'sqlite';

/**
 * A pull page already in a store's stored form (encodePullPage, page-encoding.ts): what a pull
 * worker thread sends the writing thread instead of objects (cheaper to pass, and nothing left to
 * encode on the writing thread). Opaque outside the store that reads it.
 */
export interface EncodedPullPage {
  readonly encoding: StoreEncoding;
  readonly observations: readonly unknown[];
  readonly records: readonly unknown[];
}

/** What ingestPage takes: observations and snapshots, as objects or already encoded. */
export type IngestPage = { observations: Observation[]; records: RecordSnapshot[] } | EncodedPullPage;

/**
 * A decision in the store's own stored form (Store.encodeDecision): what a reconcile worker sends
 * the committing thread instead of the object (cheaper to pass between threads and to commit).
 */
export type EncodedDecision = string & { readonly __storedDecision: true };

export interface ReconcileResult {
  subject: string;
  decision: Decision | EncodedDecision;
  changes: Change[];
  /**
   * The dirty version the decision was made from (SubjectState.dirty): the flag is cleared only if
   * the subject was not marked again since. Absent: cleared whatever its version.
   */
  dirty?: number;
}

/**
 * How another thread opens a read-only view of a store (see Store.readerSpec): plain data, so it
 * can be posted to a worker. Only the store module interprets it (openStoreReader).
 */
export type StoreReaderSpec = { kind: 'sqlite'; path: string; salt: string };

export interface WebhookIntake {
  connectorId: string;
  eventId: string;
  eventType: string;
  receivedAt: string;
  /** Raw event as received, for audit and replay. */
  payload: unknown;
}

export interface StoreStats {
  subjects: number;
  records: number;
  observations: number;
  dirtySubjects: number;
  outbox: Record<OutboxState, number>;
  oldestPendingAt: string | null;
  deadLetters: number;
  tombstones: number;
}

/**
 * The one storage interface (DESIGN.md section 5). SQLite first; Postgres later, hence async.
 * Every method that writes is durable (committed, fsynced) when its promise resolves.
 */
export interface Store {
  close(): Promise<void>;

  // ---- pull ingestion ---------------------------------------------------
  /**
   * One transaction: append observations (duplicates by id ignored), upsert record snapshots
   * (marking them seen by this run), mark their subjects dirty, and save the connector's cursor.
   * Records and observations of tombstoned subjects are not stored; they are returned instead.
   */
  ingestPage(connectorId: string, runId: number, page: IngestPage, cursor: string | null): Promise<IngestResult>;
  /** This store's encoding of pull pages (a pull worker encodes with it: encodePullPage). */
  readonly encoding: StoreEncoding;
  /** After a complete full pull: forget records of this connector not seen by the run. Returns how many. */
  dropUnseenRecords(connectorId: string, runId: number): Promise<number>;
  getCursor(connectorId: string): Promise<string | null>;

  // ---- statements made through consentd (CLI, admin API) and webhooks -----
  /** Append observations and mark subjects dirty, in one transaction. Returns ids actually added. */
  addObservations(observations: Observation[]): Promise<string[]>;
  /**
   * Webhook intake, one transaction: store events not seen before (dedupe by connector + event id),
   * append the observations of the new events, upsert records, mark subjects dirty.
   * Returns the ids of the events that were new.
   */
  recordWebhookEvents(events: WebhookIntake[], observationsByEvent: Map<string, Observation[]>, records: RecordSnapshot[]): Promise<string[]>;

  // ---- reconcile ----------------------------------------------------------
  /** The stored form of a decision (see EncodedDecision); a reader view encodes as its store does. */
  encodeDecision(decision: Decision): EncodedDecision;
  /** How many subjects are dirty (cheap; decides whether a reconcile is worth a worker thread). */
  dirtyCount(): Promise<number>;
  /**
   * Up to `parts - 1` dirty subjects that cut the dirty subjects, in subject order, into `parts`
   * runs of about equal size: each is the last subject of its run (fewer when there are few).
   * Lets several threads decide a reconcile's subjects side by side.
   */
  dirtySplits(parts: number): Promise<string[]>;
  /**
   * A read-only view of this store for another thread (null when there is none, e.g. an in-memory
   * database). Every pending write is visible to it first (a SQLite store absorbs its logs).
   */
  readerSpec(): Promise<StoreReaderSpec | null>;
  /** Up to `limit` dirty subjects with their observations and records, subject order, after `after`. */
  dirtySubjects(limit: number, after: string | null, only?: readonly string[]): Promise<SubjectState[]>;
  /** The person a stored record belongs to, or null when the store holds no such record. */
  subjectOfRecord(connectorId: string, recordId: string): Promise<string | null>;
  /** Load one subject (explain, planning a single person). */
  subjectState(subject: string): Promise<SubjectState>;
  /** Load several subjects at once (as subjectState each, in the order given). */
  subjectStates(subjects: readonly string[]): Promise<SubjectState[]>;
  /**
   * One transaction: save each decision, enqueue its changes (idempotent by key; a pending change
   * for the same record/scope/op with another key is superseded), clear the dirty flag.
   */
  commitReconcile(results: ReconcileResult[], lane: Lane, opts?: CommitReconcileOptions): Promise<{ enqueued: number }>;
  decision(subject: string): Promise<Decision | null>;
  /** All subjects, in order, for a full re-decide (e.g. after a policy change). Marks them dirty. */
  markAllDirty(): Promise<number>;

  // ---- outbox -------------------------------------------------------------
  /** Move up to `limit` due items of a connector to in_flight (high lane first) and return them. */
  claimOutbox(connectorId: string, limit: number, now: number): Promise<OutboxItem[]>;
  /**
   * Pushed: the claimed items (by OutboxItem.id) are done, and the record snapshots become what was
   * pushed (so the echo is a no-op).
   */
  completeOutbox(ids: readonly number[], snapshots: RecordSnapshot[]): Promise<void>;
  /**
   * Failed for now: retried once due. Failed, requeued and replayed items whose target got a newer
   * change meanwhile are superseded instead: an older decision never lands after a newer one.
   */
  retryOutbox(id: number, notBefore: number, error: string): Promise<void>;
  /** Permanent failure or retries exhausted: dead, with a dead-letter row (superseded, see retryOutbox). */
  killOutbox(id: number, reason: string): Promise<void>;
  /** Crash recovery: in_flight items go back to pending (pushes are idempotent; superseded, see retryOutbox). */
  requeueInFlight(connectorId?: string): Promise<number>;
  /** Pending + retry + in_flight count per connector. */
  outboxDepth(): Promise<Record<string, number>>;
  /** Earliest notBefore among retry items of a connector, or null. */
  nextDue(connectorId: string): Promise<number | null>;
  listDeadLetters(limit: number): Promise<DeadLetter[]>;
  /** Dead letter back to pending; true if it existed. */
  replayDeadLetter(id: number): Promise<boolean>;

  // ---- runs ---------------------------------------------------------------
  startRun(kind: RunKind, connectorId: string | null): Promise<number>;
  finishRun(id: number, status: RunStatus, stats: Record<string, number>, error?: string): Promise<void>;
  listRuns(limit: number): Promise<RunInfo[]>;
  lastRun(kind: RunKind, connectorId: string | null, status?: RunStatus): Promise<RunInfo | null>;
  /** Runs left `running` by a crash become `interrupted`. */
  interruptRunningRuns(): Promise<number>;

  // ---- erasure (policy rule 6) ------------------------------------------------
  /**
   * One transaction: delete the subject's observations, records, decision and pending outbox
   * rows except erase changes; keep a salted-hash tombstone and an audit fact.
   * `redoable`: the erasure is derived again from durable statements if this commit is lost (a
   * full reconcile's, a pull's), so the store may skip the fsync; by default it is durable.
   */
  eraseSubject(subject: string, subjectHash: string, source: string, erasures: Change[], opts?: EraseOptions): Promise<void>;
  isTombstoned(subjectHash: string): Promise<boolean>;

  // ---- audit, status --------------------------------------------------------
  /** Stream the ledger (append-only audit trail) in observedAt order. */
  iterateObservations(): AsyncIterable<Observation>;
  /** Stream erasure audit facts (hash, source, when). */
  iterateErasures(): AsyncIterable<{ subjectHash: string; source: string; erasedAt: string }>;
  stats(): Promise<StoreStats>;
}
