import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { subjectHash } from '../../model/email.js';
import type { Change, Decision, Observation, RecordSnapshot } from '../../model/index.js';
import { StoreError } from '../errors.js';
import { ACTIVE_OUTBOX_STATES, OUTBOX_STATES, statesLeadingTo } from '../outbox-states.js';
import type {
  DeadLetter,
  IngestResult,
  Lane,
  OutboxItem,
  OutboxState,
  ReconcileResult,
  RunInfo,
  RunKind,
  RunStatus,
  Store,
  StoreStats,
  SubjectState,
  WebhookIntake,
} from '../store.js';
import { LATEST_SCHEMA_VERSION, checkSchema, migrate } from './migrations.js';

export { LATEST_SCHEMA_VERSION, MIGRATIONS, migrate } from './migrations.js';
export type { Migration } from './migrations.js';

export interface SqliteStoreOptions {
  /** Open without writing: no migration, no pragma that writes; the schema must be current. */
  readonly?: boolean;
  /**
   * Salt of `subjectHash` (the configured one). Tombstones are keyed by it, so it must be the salt
   * the engine uses. When omitted, a random salt generated with the database and kept in it is used
   * (exposed as `store.salt`).
   */
  salt?: string;
  /** SQLite page cache, MiB (default 64). */
  cacheMiB?: number;
  /** Page size of a database created by this call (default 8192); ignored for existing files. */
  pageSize?: number;
  /** Log rows absorbed per transaction (default ABSORB_CHUNK); tests use small values. */
  absorbChunk?: number;
}

/** Page size of the streaming iterators. */
const STREAM_PAGE = 5000;
/**
 * Log rows absorbed per transaction (the event loop gets a turn between chunks). Each chunk is
 * sorted by subject before it moves: the chunk bounds that sort's memory (50k: ~50 MB less peak
 * RSS than 250k at the same speed).
 */
const ABSORB_CHUNK = 50_000;
/** Dirty versions remembered between dirtySubjects() and commitReconcile() (bounded). */
const MAX_REMEMBERED_DIRTY = 200_000;
const LANES: readonly Lane[] = ['high', 'normal'];

/** Columns of an observation; `echo` (0/1) last, so that fromRow can drop it cheaply when 0. */
const OBS_FIELDS =
  'id, subject, source, record_id AS recordId, kind, channel, purpose, state, strength, stated_at AS statedAt, how, reference, evidence, reason, observed_at AS observedAt';
const OBS_COLUMNS = `${OBS_FIELDS}, echo`;

/**
 * Is the obs_log row `l` an echo (policy rule 10; see Observation.echo)? It is when it is eligible
 * (rec_mark set: a consent observation with a record id, from the connector that ingested it) and
 * its state equals what the snapshot of its record said before it was logged: the latest rec_log
 * row of (source, record_id) logged before it (seq <= rec_mark), else the absorbed snapshot in
 * `records` (absorb never moves a snapshot logged after a waiting observation into `records`).
 * No snapshot, or no state for the scope (`''` stops the fallback to `records`): news.
 */
const ECHO_OF_LOG_ROW = `CASE WHEN l.rec_mark IS NULL THEN 0 WHEN l.state = coalesce(
    (SELECT coalesce(json_extract(p.snapshot, '$.consent."' || l.channel || ':' || l.purpose || '"'), '') FROM rec_log AS p
      WHERE p.connector_id = l.source AND p.record_id = l.record_id AND p.seq <= l.rec_mark ORDER BY p.seq DESC LIMIT 1),
    (SELECT json_extract(r.snapshot, '$.consent."' || l.channel || ':' || l.purpose || '"') FROM records AS r
      WHERE r.connector_id = l.source AND r.record_id = l.record_id)
  ) THEN 1 ELSE 0 END`;

/** A loaded observation row: `echo` 0/1 -> `echo: true` or no property (exactOptionalPropertyTypes). */
type ObservationRow = Omit<Observation, 'echo'> & { echo?: number | boolean };
function fromRow(row: ObservationRow): Observation {
  // Deleting the last-added property is cheap in V8 (the object keeps its fast shape).
  if (row.echo === 1) row.echo = true;
  else delete row.echo;
  return row as Observation;
}

const sqlList = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(', ');

interface OutboxRow {
  seq: number;
  change: string;
  lane: Lane;
  attempts: number;
  not_before: number;
  last_error: string | null;
  enqueued_at: string;
}

interface RunRow {
  id: number;
  kind: RunKind;
  connector_id: string | null;
  status: RunStatus;
  started_at: string;
  finished_at: string | null;
  stats: string;
  error: string | null;
}

type Stmt = Database.Statement<unknown[], unknown>;

/** Open (creating and migrating if needed) a SQLite store. `path` may be ':memory:' for tests. */
export function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): SqliteStore {
  return new SqliteStore(path, opts);
}

export class SqliteStore implements Store {
  readonly path: string;
  readonly readonly: boolean;
  readonly salt: string;
  readonly schemaVersion: number;
  private readonly db: Database.Database;
  private readonly s: ReturnType<typeof prepareStatements>;
  /** subject -> dirty version handed out by dirtySubjects(), so a commit clears only what it read. */
  private readonly loadedDirty = new Map<string, number>();
  /** Tombstone buckets, cached per meta 'tombstones_gen' (bumped by every erasure, any process). */
  private buckets: { gen: string; set: Set<number> } | null = null;
  private readonly absorbChunk: number;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    this.readonly = opts.readonly === true;
    this.absorbChunk = Math.max(1, Math.floor(opts.absorbChunk ?? ABSORB_CHUNK));
    const db = new Database(path, this.readonly ? { readonly: true, fileMustExist: true } : {});
    this.db = db;
    try {
      db.pragma('busy_timeout = 5000');
      db.pragma(`cache_size = ${-1024 * Math.max(2, Math.floor(opts.cacheMiB ?? 64))}`);
      // temp_store stays the default (FILE): absorb sorts a chunk of log rows (snapshots included)
      // by subject; in memory that sort would grow the RSS with the chunk, on file it spills.
      if (!this.readonly) {
        const fresh = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() === 0;
        if (fresh) db.pragma(`page_size = ${opts.pageSize ?? 8192}`);
        // Every acknowledged write must survive a crash or a power loss: WAL + fsync on commit.
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.pragma('foreign_keys = ON');
        migrate(db, path);
        this.schemaVersion = LATEST_SCHEMA_VERSION;
      } else {
        this.schemaVersion = checkSchema(db, path);
      }
      this.s = prepareStatements(db);
      this.salt = opts.salt ?? this.storedSalt();
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private storedSalt(): string {
    const existing = this.s.getMeta.get('salt');
    if (typeof existing === 'string') return existing;
    if (this.readonly) throw new StoreError('STORE_SALT_MISMATCH', `database ${this.path} has no salt; pass the configured salt`);
    const salt = randomBytes(32).toString('hex');
    this.s.setMetaIfAbsent.run('salt', salt);
    return this.s.getMeta.get('salt') as string;
  }

  // ---- plumbing -------------------------------------------------------------

  private live(): void {
    if (!this.db.open) throw new StoreError('STORE_CLOSED', `store ${this.path} is closed`);
  }

  /** Write transaction, BEGIN IMMEDIATE (no lock upgrade deadlock between processes). */
  private tx<T>(fn: () => T): T {
    this.live();
    return this.db.transaction(fn).immediate();
  }

  /**
   * Write transaction whose commit is not fsynced (synchronous = NORMAL for this one commit), for
   * writes that can always be redone: pull pages (a pull can always be re-run), absorb (moves
   * rows between the store's own tables), reconcile results (derived from durable observations;
   * the subjects stay dirty until the clear lands) and the outbox's claim / complete / retry
   * (a lost claim leaves items pending, a lost completion pushes again: pushes are idempotent).
   * In WAL mode such a commit is still atomic and a process crash (kill -9) loses nothing: the
   * frames are in the WAL file, in the OS page cache. Only a power loss or an OS crash can lose
   * the last of them, and then they are lost as a whole and in order: the WAL is replayed up to
   * the last intact commit, so a page and its cursor vanish together (the cursor saved with a page
   * never runs ahead of the rows), and the next pull re-reads from the previous cursor. Every
   * acknowledged write (webhook intake, statements, erasures, dead letters) keeps synchronous =
   * FULL, and its fsync of the WAL makes every earlier frame durable too: an acknowledged write
   * never depends on a lost one. On the instant path this leaves one fsync per intake batch
   * instead of one per store write, which matters most when the disk is busy.
   */
  private bulkTx<T>(fn: () => T): T {
    this.live();
    this.db.pragma('synchronous = NORMAL');
    try {
      return this.db.transaction(fn).immediate();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /**
   * Tombstone membership, for use inside one transaction. A salted 32-bit bucket (cheap) is tested
   * first; only on a bucket hit is the keyed subjectHash computed and looked up. Cached per subject.
   */
  private tombstoneFilter(): (subject: string) => boolean {
    const gen = (this.s.getMeta.get('tombstones_gen') as string | undefined) ?? '0';
    if (gen === '0') return () => false;
    if (this.buckets?.gen !== gen) this.buckets = { gen, set: new Set(this.s.allBuckets.all() as number[]) };
    const set = this.buckets.set;
    if (set.size === 0) return () => false;
    const cache = new Map<string, boolean>();
    return (subject) => {
      if (!set.has(saltedBucket(this.salt, subject))) return false;
      let t = cache.get(subject);
      if (t === undefined) {
        t = this.s.tombstone.get(subjectHash(subject, this.salt)) !== undefined;
        cache.set(subject, t);
      }
      return t;
    };
  }

  /**
   * Highest rec_log seq ever assigned (AUTOINCREMENT: never reused). An observation logged with this
   * mark came after every snapshot logged so far: absorb compares it with those (see ECHO_OF_LOG_ROW).
   */
  private recMark(): number {
    return (this.s.recMark.get() as number | undefined) ?? 0;
  }

  /**
   * Append an observation to the staging log (absorbed before any read). `recMark`: see recMark();
   * null = never an echo. Only consent observations with a record id, stated by the connector that
   * ingests them, can be echoes; suppressions and erasures are sticky and never flagged.
   */
  private logObservation(o: Observation, recMark: number | null, connectorId: string | null): void {
    const eligible = recMark !== null && o.kind === 'consent' && o.recordId !== null && o.source === connectorId;
    this.s.logObs.run(
      o.subject,
      o.id,
      o.source,
      o.recordId ?? null,
      o.kind,
      o.channel,
      o.purpose,
      o.state,
      o.strength,
      o.statedAt ?? null,
      o.how,
      o.reference ?? null,
      o.evidence ?? null,
      o.reason ?? null,
      o.observedAt,
      eligible ? recMark : null,
    );
  }

  private logRecord(r: RecordSnapshot, runId: number | null): void {
    this.s.logRec.run(r.subject, r.connectorId, r.recordId, JSON.stringify(r), runId);
  }

  /**
   * Move the staging logs into the subject-clustered tables: observations (duplicates ignored),
   * records (per record, the latest logged snapshot wins; last_seen_run = the latest pull run that
   * saw it) and the dirty flags of every subject concerned. Sorted by subject, in chunks of
   * ABSORB_CHUNK rows, each chunk one transaction; the event loop gets a turn between chunks.
   * Every read that needs subjects, observations or records calls this first; a read-only store
   * cannot, and reads the logs as well where it matters (subjectState).
   *
   * Echoes (policy rule 10): each observation is flagged while it moves, against the snapshot its
   * record had before the observation was logged (ECHO_OF_LOG_ROW): the snapshots of the same
   * chunk move only after its observations, and never past the mark of an observation still waiting.
   * Pull pages, webhook intake and pushed snapshots (completeOutbox) all come through these logs,
   * so the snapshot of our own push is "before" the pull or webhook that echoes it.
   */
  async absorb(): Promise<void> {
    this.live();
    if (this.readonly) return;
    // Cheap check outside any write transaction: nothing waiting is the common case.
    if (this.s.minObsLog.get() === null && this.s.minRecLog.get() === null) return;
    for (;;) {
      const more = this.bulkTx(() => {
        const obsFrom = this.s.minObsLog.get() as number | null;
        const recFrom = this.s.minRecLog.get() as number | null;
        if (obsFrom === null && recFrom === null) return false;
        const obsTo = obsFrom === null ? 0 : obsFrom + this.absorbChunk - 1;
        let recTo = recFrom === null ? 0 : recFrom + this.absorbChunk - 1;
        if (recFrom !== null && obsFrom !== null) {
          // Echo flags compare an observation with the snapshots logged before it: a snapshot logged
          // after an observation that waits for a later chunk must not reach `records` before it.
          // Marks grow with seq, so the first waiting one bounds them all.
          const next = this.s.nextRecMark.get(obsTo) as number | undefined;
          if (next !== undefined && next < recTo) recTo = next;
        }
        this.s.absorbDirty.run(obsTo, recTo);
        if (obsFrom !== null) {
          // Before this chunk's snapshots move: each observation is flagged against the old ones.
          this.s.absorbObs.run(obsTo);
          this.s.clearObsLog.run(obsTo);
        }
        if (recFrom !== null) {
          this.s.absorbRec.run(recTo);
          this.s.clearRecLog.run(recTo);
        }
        return true;
      });
      if (!more) return;
      await yieldToLoop();
    }
  }

  private rememberDirty(subject: string, version: number): void {
    this.loadedDirty.delete(subject);
    this.loadedDirty.set(subject, version);
    if (this.loadedDirty.size > MAX_REMEMBERED_DIRTY) {
      const oldest = this.loadedDirty.keys().next();
      if (oldest.done !== true) this.loadedDirty.delete(oldest.value);
    }
  }

  /** Distinct connector ids of the outbox (loose index scan: one seek per connector). */
  private outboxConnectors(): string[] {
    return this.s.outboxConnectors.all() as string[];
  }

  /**
   * Enqueue one change: idempotent by key. A key seen before is re-armed if it was done (the
   * record drifted after our push) or, when `reviveDead`, dead. A change that is new (or re-armed)
   * supersedes the pending/retry rows of the same target with another key.
   */
  private enqueue(c: Change, lane: Lane, now: string, reviveDead: boolean): boolean {
    // The same target is being pushed right now under another key (a statement that arrived while
    // it was in flight, e.g. a platform's webhook for that very push, decided the scope anew): the
    // push in flight will land it, and retries if it fails. Queueing it again would push it twice.
    if (this.s.inFlightSameTarget.get(c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.target, c.key) !== undefined) return false;
    const json = JSON.stringify(c);
    let fresh = this.s.insertOutbox.run(c.key, c.connectorId, c.recordId, c.subject, c.op, c.channel, c.purpose, lane, json, now, now).changes > 0;
    if (!fresh) {
      fresh = (reviveDead ? this.s.rearmDoneOrDead : this.s.rearmDone).run(lane, json, now, c.key).changes > 0;
      if (!fresh && lane === 'high') this.s.raiseLane.run(now, c.key);
    }
    if (fresh) this.s.supersede.run(now, c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.key);
    return fresh;
  }

  // ---- lifecycle --------------------------------------------------------------

  async close(): Promise<void> {
    if (!this.db.open) return;
    if (!this.readonly) {
      try {
        this.db.pragma('optimize');
      } catch {
        // best effort
      }
    }
    this.db.close();
  }

  // ---- pull ingestion -----------------------------------------------------------

  async ingestPage(
    connectorId: string,
    runId: number,
    page: { observations: Observation[]; records: RecordSnapshot[] },
    cursor: string | null,
  ): Promise<IngestResult> {
    return this.bulkTx(() => {
      const isTombstoned = this.tombstoneFilter();
      const mark = this.recMark();
      const tombstoned = new Map<string, RecordSnapshot>();
      const tombstonedObs: Observation[] = [];
      const seen = new Set<string>();
      let observationsAdded = 0;
      let recordsUpserted = 0;
      for (const o of page.observations) {
        if (isTombstoned(o.subject)) {
          tombstonedObs.push(o);
          continue;
        }
        // Already in the ledger (a nightly re-pull) or twice in this page: nothing to add.
        if (seen.has(o.id) || this.s.hasObs.get(o.subject, o.id) !== undefined) continue;
        seen.add(o.id);
        this.logObservation(o, mark, connectorId);
        observationsAdded++;
      }
      for (const r of page.records) {
        if (isTombstoned(r.subject)) {
          tombstoned.set(`${r.connectorId}\u0000${r.recordId}`, r);
          continue;
        }
        this.logRecord(r, runId);
        recordsUpserted++;
      }
      // Observations of erased people that came without their record: report the record they name.
      for (const o of tombstonedObs) {
        const recordId = o.recordId ?? o.subject;
        const k = `${connectorId}\u0000${recordId}`;
        if (!tombstoned.has(k)) tombstoned.set(k, { connectorId, recordId, subject: o.subject, consent: {}, suppressed: {}, meta: {} });
      }
      // A null cursor means "no resumable position yet": keep the previous one.
      if (cursor !== null) this.s.saveCursor.run(connectorId, cursor, new Date().toISOString());
      return { observationsAdded, recordsUpserted, tombstoned: [...tombstoned.values()] };
    });
  }

  async dropUnseenRecords(connectorId: string, runId: number): Promise<number> {
    await this.absorb();
    return this.tx(() => {
      this.s.dirtyUnseen.run(connectorId, runId);
      return this.s.dropUnseen.run(connectorId, runId).changes;
    });
  }

  async getCursor(connectorId: string): Promise<string | null> {
    this.live();
    const c = this.s.getCursor.get(connectorId) as string | null | undefined;
    return c ?? null;
  }

  // ---- statements made through consentd and webhooks ------------------------------

  async addObservations(observations: Observation[]): Promise<string[]> {
    await this.absorb();
    return this.tx(() => {
      const isTombstoned = this.tombstoneFilter();
      const added: string[] = [];
      for (const o of observations) {
        if (isTombstoned(o.subject)) continue;
        if (added.includes(o.id) || this.s.hasObs.get(o.subject, o.id) !== undefined) continue;
        // A statement made through consentd (CLI, admin API) is never an echo.
        this.logObservation(o, null, null);
        added.push(o.id);
      }
      return added;
    });
  }

  async recordWebhookEvents(events: WebhookIntake[], observationsByEvent: Map<string, Observation[]>, records: RecordSnapshot[]): Promise<string[]> {
    // No absorb here: the webhook must be acknowledged fast, even while a full pull is being absorbed.
    return this.tx(() => {
      const isTombstoned = this.tombstoneFilter();
      // Before this intake's own snapshots (logged below): those say what the events say.
      const mark = this.recMark();
      const fresh: string[] = [];
      for (const e of events) {
        const obs = observationsByEvent.get(e.eventId) ?? [];
        const live = obs.filter((o) => !isTombstoned(o.subject));
        // An event only about erased people is kept for dedupe, without its (personal) payload.
        const payload = obs.length > 0 && live.length === 0 ? null : (JSON.stringify(e.payload ?? null) ?? null);
        if (this.s.insertEvent.run(e.connectorId, e.eventId, e.eventType, e.receivedAt, payload).changes === 0) continue;
        fresh.push(e.eventId);
        const subjects = new Set<string>();
        for (const o of live) {
          subjects.add(o.subject);
          this.logObservation(o, mark, e.connectorId);
        }
        for (const subject of subjects) this.s.insertEventSubject.run(subject, e.connectorId, e.eventId);
      }
      for (const r of records) if (!isTombstoned(r.subject)) this.logRecord(r, null);
      return fresh;
    });
  }

  // ---- reconcile ----------------------------------------------------------------

  async dirtySubjects(limit: number, after: string | null, only?: readonly string[]): Promise<SubjectState[]> {
    await this.absorb();
    if (limit <= 0 || (only !== undefined && only.length === 0)) return [];
    const rows = (
      only === undefined ? this.s.dirtyPage.all(after ?? '', limit) : this.s.dirtyPageOnly.all(after ?? '', JSON.stringify(only), limit)
    ) as Array<{ subject: string; dirty: number }>;
    if (rows.length === 0) return [];
    const bySubject = new Map<string, SubjectState>();
    const states: SubjectState[] = [];
    for (const r of rows) {
      const st: SubjectState = { subject: r.subject, observations: [], records: [] };
      bySubject.set(r.subject, st);
      states.push(st);
      this.rememberDirty(r.subject, r.dirty);
    }
    this.loadInto(bySubject);
    return states;
  }

  /** Observations and records of the given subjects: one query each. */
  private loadInto(bySubject: Map<string, SubjectState>): void {
    const list = JSON.stringify([...bySubject.keys()]);
    for (const row of this.s.obsOfSubjects.iterate(list) as IterableIterator<ObservationRow>) {
      bySubject.get(row.subject)?.observations.push(fromRow(row));
    }
    for (const json of this.s.recordsOfSubjects.iterate(list) as IterableIterator<string>) {
      const r = JSON.parse(json) as RecordSnapshot;
      bySubject.get(r.subject)?.records.push(r);
    }
  }

  async subjectOfRecord(connectorId: string, recordId: string): Promise<string | null> {
    await this.absorb();
    const subject = this.s.subjectOfRecord.get(connectorId, recordId) as string | undefined;
    return subject ?? null;
  }

  async subjectState(subject: string): Promise<SubjectState> {
    await this.absorb();
    const st: SubjectState = { subject, observations: [], records: [] };
    this.loadInto(new Map([[subject, st]]));
    if (this.readonly) {
      // Cannot absorb: add what still waits in the logs (a scan, fine for one person).
      const ids = new Set(st.observations.map((o) => o.id));
      for (const row of this.s.obsLogOf.all(subject) as ObservationRow[]) {
        if (ids.has(row.id)) continue;
        ids.add(row.id);
        st.observations.push(fromRow(row));
      }
      const latest = new Map(st.records.map((r) => [`${r.connectorId}\u0000${r.recordId}`, r]));
      for (const json of this.s.recLogOf.all(subject) as string[]) {
        const r = JSON.parse(json) as RecordSnapshot;
        latest.set(`${r.connectorId}\u0000${r.recordId}`, r);
      }
      st.records = [...latest.values()];
    }
    return st;
  }

  async commitReconcile(results: ReconcileResult[], lane: Lane): Promise<{ enqueued: number }> {
    await this.absorb();
    // Derived from durable observations: lost with the last commits of a power loss, the subjects are still dirty and decided again.
    return this.bulkTx(() => {
      const now = new Date().toISOString();
      let isTombstoned: ((subject: string) => boolean) | null = null;
      let enqueued = 0;
      for (const r of results) {
        const dirty = this.s.getDirty.get(r.subject) as number | undefined;
        if (dirty === undefined) {
          // Erased while it was being decided: writing now would bring the person back.
          isTombstoned ??= this.tombstoneFilter();
          if (isTombstoned(r.subject)) {
            this.loadedDirty.delete(r.subject);
            continue;
          }
        }
        this.s.upsertDecision.run(r.subject, JSON.stringify(r.decision), now);
        for (const c of r.changes) if (this.enqueue(c, lane, now, false)) enqueued++;
        if (dirty !== undefined && dirty > 0) {
          const seen = this.loadedDirty.get(r.subject);
          // Marked again since it was read (a webhook meanwhile): leave it dirty for the next pass.
          if (seen === undefined || seen === dirty) this.s.clearDirty.run(r.subject);
        }
        this.loadedDirty.delete(r.subject);
      }
      return { enqueued };
    });
  }

  async decision(subject: string): Promise<Decision | null> {
    this.live();
    const json = this.s.getDecision.get(subject) as string | undefined;
    return json === undefined ? null : (JSON.parse(json) as Decision);
  }

  async markAllDirty(): Promise<number> {
    await this.absorb();
    return this.tx(() => this.s.markAllDirty.run().changes);
  }

  // ---- outbox -------------------------------------------------------------------

  async claimOutbox(connectorId: string, limit: number, now: number): Promise<OutboxItem[]> {
    if (limit <= 0) return [];
    // A claim lost to a power loss leaves the items pending, where requeueInFlight would put them anyway.
    return this.bulkTx(() => {
      const picked: OutboxRow[] = [];
      for (const lane of LANES) {
        const need = limit - picked.length;
        if (need <= 0) break;
        const pending = this.s.duePending.all(connectorId, lane, need) as OutboxRow[];
        const retry = this.s.dueRetry.all(connectorId, lane, now, need) as OutboxRow[];
        const merged = retry.length === 0 ? pending : [...pending, ...retry].sort((a, b) => a.seq - b.seq);
        for (let i = 0; i < need && i < merged.length; i++) picked.push(merged[i] as OutboxRow);
      }
      const at = new Date().toISOString();
      return picked.map((row) => {
        this.s.claim.run(at, row.seq);
        return {
          change: JSON.parse(row.change) as Change,
          lane: row.lane,
          state: 'in_flight',
          attempts: row.attempts + 1,
          notBefore: row.not_before,
          lastError: row.last_error,
          enqueuedAt: row.enqueued_at,
        } satisfies OutboxItem;
      });
    });
  }

  async completeOutbox(keys: string[], snapshots: RecordSnapshot[]): Promise<void> {
    // Lost to a power loss, the items are pushed again (pushes are idempotent) and the next pull reads the snapshots.
    this.bulkTx(() => {
      const now = new Date().toISOString();
      for (const key of keys) {
        const done = this.s.markDone.get(now, key) as { op: string; subject: string; change: string } | undefined;
        if (done?.op === 'erase') {
          // The erasure went through: keep the fact, not the person.
          const hash = subjectHash(done.subject, this.salt);
          const c = JSON.parse(done.change) as Change;
          // Record ids may be the address itself (SendGrid) or derived from it (Mailchimp's MD5).
          const redacted: Change = { ...c, subject: hash, recordId: subjectHash(c.recordId, this.salt), meta: {} };
          this.s.redactOutbox.run(hash, redacted.recordId, JSON.stringify(redacted), key);
        }
      }
      // Through the log, so that the pushed snapshot lands after any pulled one still waiting there.
      const isTombstoned = this.tombstoneFilter();
      for (const r of snapshots) if (!isTombstoned(r.subject)) this.logRecord(r, null);
    });
  }

  async retryOutbox(key: string, notBefore: number, error: string): Promise<void> {
    // Lost to a power loss, the item is in flight again and retried at the next start.
    this.bulkTx(() => this.s.markRetry.run(notBefore, error, new Date().toISOString(), key));
  }

  async killOutbox(key: string, reason: string): Promise<void> {
    this.tx(() => {
      const now = new Date().toISOString();
      const row = this.s.markDead.get(reason, now, key) as { connector_id: string; subject: string; change: string; attempts: number } | undefined;
      if (row !== undefined) this.s.insertDeadLetter.run(key, row.connector_id, row.subject, row.change, reason, row.attempts, now);
    });
  }

  async requeueInFlight(connectorId?: string): Promise<number> {
    return this.tx(() => {
      const now = new Date().toISOString();
      let n = 0;
      for (const id of connectorId === undefined ? this.outboxConnectors() : [connectorId]) n += this.s.requeue.run(now, id).changes;
      return n;
    });
  }

  async outboxDepth(): Promise<Record<string, number>> {
    this.live();
    const depth: Record<string, number> = {};
    for (const id of this.outboxConnectors()) {
      const n = this.s.depthOf.get(id) as number;
      if (n > 0) depth[id] = n;
    }
    return depth;
  }

  async nextDue(connectorId: string): Promise<number | null> {
    this.live();
    return (this.s.nextDue.get(connectorId) as number | null | undefined) ?? null;
  }

  async listDeadLetters(limit: number): Promise<DeadLetter[]> {
    this.live();
    const rows = this.s.deadLetters.all(limit) as Array<{ id: number; change: string; reason: string; attempts: number; dead_at: string }>;
    return rows.map((r) => ({ id: r.id, change: JSON.parse(r.change) as Change, reason: r.reason, attempts: r.attempts, deadAt: r.dead_at }));
  }

  async replayDeadLetter(id: number): Promise<boolean> {
    return this.tx(() => {
      const now = new Date().toISOString();
      const key = this.s.markReplayed.get(now, id) as string | undefined;
      if (key === undefined) return false;
      this.s.replay.run(now, key);
      return true;
    });
  }

  // ---- runs -----------------------------------------------------------------------

  async startRun(kind: RunKind, connectorId: string | null): Promise<number> {
    return this.tx(() => Number(this.s.startRun.run(kind, connectorId, new Date().toISOString()).lastInsertRowid));
  }

  async finishRun(id: number, status: RunStatus, stats: Record<string, number>, error?: string): Promise<void> {
    this.tx(() => this.s.finishRun.run(status, new Date().toISOString(), JSON.stringify(stats), error ?? null, id));
  }

  async listRuns(limit: number): Promise<RunInfo[]> {
    this.live();
    return (this.s.listRuns.all(limit) as RunRow[]).map(toRunInfo);
  }

  async lastRun(kind: RunKind, connectorId: string | null, status?: RunStatus): Promise<RunInfo | null> {
    this.live();
    const row = (status === undefined ? this.s.lastRun.get(kind, connectorId) : this.s.lastRunWithStatus.get(kind, connectorId, status)) as RunRow | undefined;
    return row === undefined ? null : toRunInfo(row);
  }

  async interruptRunningRuns(): Promise<number> {
    return this.tx(() => this.s.interruptRuns.run(new Date().toISOString()).changes);
  }

  // ---- erasure ------------------------------------------------------------------------

  async eraseSubject(subject: string, hash: string, source: string, erasures: Change[]): Promise<void> {
    this.live();
    if (hash !== subjectHash(subject, this.salt)) {
      throw new StoreError('STORE_SALT_MISMATCH', 'subject hash was not made with this store\'s salt: the tombstone would never match');
    }
    await this.absorb();
    this.tx(() => {
      const now = new Date().toISOString();
      const s = this.s;
      // Rows logged after the absorb above (none in one process; another process may race).
      s.eraseObsLog.run(subject);
      s.eraseRecLog.run(subject);
      s.eraseObservations.run(subject);
      s.eraseRecords.run(subject);
      s.eraseDecision.run(subject);
      s.eraseOutbox.run(subject);
      s.eraseDeadLetters.run(subject);
      s.redactEvents.run(subject);
      s.eraseEventSubjects.run(subject);
      s.eraseSubject.run(subject);
      s.insertTombstone.run(hash, saltedBucket(this.salt, subject), now);
      s.bumpTombstonesGen.run();
      s.insertErasureAudit.run(hash, source, now);
      for (const c of erasures) this.enqueue(c, 'high', now, true);
      this.loadedDirty.delete(subject);
    });
  }

  async isTombstoned(hash: string): Promise<boolean> {
    this.live();
    return this.s.tombstone.get(hash) !== undefined;
  }

  // ---- audit, status ----------------------------------------------------------------

  async *iterateObservations(): AsyncIterable<Observation> {
    await this.absorb();
    let at: { observedAt: string; seq: number } | undefined;
    for (;;) {
      this.live();
      const rows = ((at === undefined ? this.s.ledgerFirst.all(STREAM_PAGE) : this.s.ledgerAfter.all(at.observedAt, at.seq, STREAM_PAGE)) as ObservationRow[]).map(fromRow);
      const last = rows[rows.length - 1];
      // Keyset position read before yielding: the consumer may be slow, writers go on meanwhile.
      if (last !== undefined) at = { observedAt: last.observedAt, seq: this.s.seqOf.get(last.subject, last.id) as number };
      yield* rows;
      if (rows.length < STREAM_PAGE) return;
    }
  }

  async *iterateErasures(): AsyncIterable<{ subjectHash: string; source: string; erasedAt: string }> {
    let after = 0;
    for (;;) {
      this.live();
      const rows = this.s.erasuresAfter.all(after, STREAM_PAGE) as Array<{ id: number; subjectHash: string; source: string; erasedAt: string }>;
      for (const r of rows) yield { subjectHash: r.subjectHash, source: r.source, erasedAt: r.erasedAt };
      const tail = rows[rows.length - 1];
      if (rows.length < STREAM_PAGE || tail === undefined) return;
      after = tail.id;
    }
  }

  async stats(): Promise<StoreStats> {
    await this.absorb();
    const s = this.s;
    const outbox = Object.fromEntries(OUTBOX_STATES.map((st) => [st, 0])) as Record<OutboxState, number>;
    for (const r of s.outboxByState.all() as Array<{ state: OutboxState; n: number }>) outbox[r.state] = r.n;
    let oldestSeq: number | null = null;
    for (const id of this.outboxConnectors()) {
      for (const lane of LANES) {
        const seq = s.oldestPendingSeq.get(id, lane) as number | null | undefined;
        if (typeof seq === 'number' && (oldestSeq === null || seq < oldestSeq)) oldestSeq = seq;
      }
    }
    return {
      subjects: s.countSubjects.get() as number,
      records: s.countRecords.get() as number,
      observations: s.countObservations.get() as number,
      dirtySubjects: s.countDirty.get() as number,
      outbox,
      oldestPendingAt: oldestSeq === null ? null : ((s.enqueuedAtOf.get(oldestSeq) as string | undefined) ?? null),
      deadLetters: s.countDeadLetters.get() as number,
      tombstones: s.countTombstones.get() as number,
    };
  }
}

/**
 * Salted 32-bit FNV-1a of the subject: a prefilter for tombstones, never an identifier (collisions
 * are expected and resolved by the keyed subjectHash). Salted so that it reveals nothing without it.
 */
export function saltedBucket(salt: string, subject: string): number {
  let h = 0x811c9dc5;
  const s = `${salt}\u0000${subject}`;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function toRunInfo(r: RunRow): RunInfo {
  return {
    id: r.id,
    kind: r.kind,
    connectorId: r.connector_id,
    status: r.status,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    stats: JSON.parse(r.stats) as Record<string, number>,
    error: r.error,
  };
}

/** Every statement, prepared once per connection. */
function prepareStatements(db: Database.Database) {
  const p = (sql: string): Stmt => db.prepare(sql);
  const pluck = (sql: string): Stmt => db.prepare(sql).pluck();
  const toDone = sqlList(statesLeadingTo('done'));
  const toRetry = sqlList(statesLeadingTo('retry'));
  const toDead = sqlList(statesLeadingTo('dead'));
  const toSuperseded = sqlList(statesLeadingTo('superseded'));
  const active = sqlList(ACTIVE_OUTBOX_STATES);
  return {
    getMeta: pluck('SELECT value FROM meta WHERE key = ?'),
    setMeta: p('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
    setMetaIfAbsent: p('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)'),

    allBuckets: pluck('SELECT bucket FROM tombstones'),
    tombstone: pluck('SELECT 1 FROM tombstones WHERE subject_hash = ?'),
    subjectOfRecord: pluck('SELECT subject FROM records WHERE connector_id = ? AND record_id = ?'),
    bumpTombstonesGen: p(`INSERT INTO meta (key, value) VALUES ('tombstones_gen', '1') ON CONFLICT (key) DO UPDATE SET value = CAST(value + 1 AS TEXT)`),

    hasObs: pluck('SELECT 1 FROM observations WHERE subject = ? AND id = ?'),
    logObs: p(
      `INSERT INTO obs_log (subject, id, source, record_id, kind, channel, purpose, state, strength, stated_at, how, reference, evidence, reason, observed_at, rec_mark)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    recMark: pluck(`SELECT seq FROM sqlite_sequence WHERE name = 'rec_log'`),
    nextRecMark: pluck('SELECT rec_mark FROM obs_log WHERE seq > ? AND rec_mark IS NOT NULL ORDER BY seq LIMIT 1'),
    logRec: p('INSERT INTO rec_log (subject, connector_id, record_id, snapshot, run) VALUES (?, ?, ?, ?, ?)'),
    minObsLog: pluck('SELECT min(seq) FROM obs_log'),
    minRecLog: pluck('SELECT min(seq) FROM rec_log'),
    absorbDirty: p(
      `INSERT INTO subjects (subject, dirty)
       SELECT subject, 1 FROM (SELECT subject FROM obs_log WHERE seq <= ? UNION SELECT subject FROM rec_log WHERE seq <= ?) WHERE true ORDER BY subject
       ON CONFLICT (subject) DO UPDATE SET dirty = dirty + 1`,
    ),
    absorbObs: p(
      `INSERT OR IGNORE INTO observations (subject, id, source, record_id, kind, channel, purpose, state, strength, stated_at, how, reference, evidence, reason, observed_at, seq, echo)
       SELECT l.subject, l.id, l.source, l.record_id, l.kind, l.channel, l.purpose, l.state, l.strength, l.stated_at, l.how, l.reference, l.evidence, l.reason, l.observed_at, l.seq,
         ${ECHO_OF_LOG_ROW}
       FROM obs_log AS l WHERE l.seq <= ? ORDER BY l.subject, l.id`,
    ),
    absorbRec: p(
      `INSERT INTO records (subject, connector_id, record_id, snapshot, last_seen_run)
       SELECT l.subject, l.connector_id, l.record_id, l.snapshot, g.run
       FROM (SELECT max(seq) AS seq, max(run) AS run FROM rec_log WHERE seq <= ? GROUP BY connector_id, record_id) AS g
       JOIN rec_log AS l ON l.seq = g.seq
       WHERE true ORDER BY l.subject, l.connector_id, l.record_id
       ON CONFLICT (connector_id, record_id) DO UPDATE SET
         subject = excluded.subject, snapshot = excluded.snapshot, last_seen_run = coalesce(excluded.last_seen_run, records.last_seen_run)`,
    ),
    clearObsLog: p('DELETE FROM obs_log WHERE seq <= ?'),
    clearRecLog: p('DELETE FROM rec_log WHERE seq <= ?'),
    obsLogOf: p(`SELECT ${OBS_FIELDS}, ${ECHO_OF_LOG_ROW} AS echo FROM obs_log AS l WHERE l.subject = ? ORDER BY l.seq`),
    recLogOf: pluck('SELECT snapshot FROM rec_log WHERE subject = ? ORDER BY seq'),
    eraseObsLog: p('DELETE FROM obs_log WHERE subject = ?'),
    eraseRecLog: p('DELETE FROM rec_log WHERE subject = ?'),

    saveCursor: p('INSERT INTO cursors (connector_id, cursor, updated_at) VALUES (?, ?, ?) ON CONFLICT (connector_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at'),
    getCursor: pluck('SELECT cursor FROM cursors WHERE connector_id = ?'),
    dirtyUnseen: p(
      `INSERT INTO subjects (subject, dirty) SELECT DISTINCT subject, 1 FROM records WHERE connector_id = ? AND last_seen_run IS NOT ? AND true
       ON CONFLICT (subject) DO UPDATE SET dirty = dirty + 1`,
    ),
    dropUnseen: p('DELETE FROM records WHERE connector_id = ? AND last_seen_run IS NOT ?'),

    insertEvent: p('INSERT OR IGNORE INTO webhook_events (connector_id, event_id, type, received_at, payload) VALUES (?, ?, ?, ?, ?)'),
    insertEventSubject: p('INSERT OR IGNORE INTO webhook_event_subjects (subject, connector_id, event_id) VALUES (?, ?, ?)'),

    dirtyPage: p('SELECT subject, dirty FROM subjects WHERE dirty > 0 AND subject > ? ORDER BY subject LIMIT ?'),
    dirtyPageOnly: p(
      'SELECT subject, dirty FROM subjects WHERE dirty > 0 AND subject > ? AND subject IN (SELECT value FROM json_each(?)) ORDER BY subject LIMIT ?',
    ),
    obsOfSubjects: p(`SELECT ${OBS_COLUMNS} FROM observations WHERE subject IN (SELECT value FROM json_each(?))`),
    recordsOfSubjects: pluck('SELECT snapshot FROM records WHERE subject IN (SELECT value FROM json_each(?))'),
    getDirty: pluck('SELECT dirty FROM subjects WHERE subject = ?'),
    clearDirty: p('UPDATE subjects SET dirty = 0 WHERE subject = ?'),
    markAllDirty: p('UPDATE subjects SET dirty = dirty + 1'),
    upsertDecision: p(
      'INSERT INTO decisions (subject, decision, decided_at) VALUES (?, ?, ?) ON CONFLICT (subject) DO UPDATE SET decision = excluded.decision, decided_at = excluded.decided_at',
    ),
    getDecision: pluck('SELECT decision FROM decisions WHERE subject = ?'),

    insertOutbox: p(
      `INSERT OR IGNORE INTO outbox (key, connector_id, record_id, subject, op, channel, purpose, lane, state, attempts, not_before, last_error, change, enqueued_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, 0, NULL, ?, ?, ?)`,
    ),
    rearmDone: p(
      `UPDATE outbox SET state = 'pending', lane = ?, change = ?, attempts = 0, not_before = 0, last_error = NULL, updated_at = ? WHERE key = ? AND state = 'done'`,
    ),
    rearmDoneOrDead: p(
      `UPDATE outbox SET state = 'pending', lane = ?, change = ?, attempts = 0, not_before = 0, last_error = NULL, updated_at = ? WHERE key = ? AND state IN ('done', 'dead')`,
    ),
    raiseLane: p(`UPDATE outbox SET lane = 'high', updated_at = ? WHERE key = ? AND lane = 'normal' AND state IN ('pending', 'retry')`),
    supersede: p(
      `UPDATE outbox SET state = 'superseded', updated_at = ?
       WHERE connector_id = ? AND record_id = ? AND op = ? AND channel = ? AND purpose = ? AND state IN (${toSuperseded}) AND key <> ?`,
    ),
    inFlightSameTarget: pluck(
      `SELECT 1 FROM outbox WHERE connector_id = ? AND state = 'in_flight' AND record_id = ? AND op = ? AND channel = ? AND purpose = ?
         AND json_extract(change, '$.target') IS ? AND key <> ? LIMIT 1`,
    ),
    duePending: p(
      `SELECT seq, change, lane, attempts, not_before, last_error, enqueued_at FROM outbox
       WHERE connector_id = ? AND state = 'pending' AND lane = ? AND not_before = 0 ORDER BY seq LIMIT ?`,
    ),
    dueRetry: p(
      `SELECT seq, change, lane, attempts, not_before, last_error, enqueued_at FROM outbox
       WHERE connector_id = ? AND state = 'retry' AND lane = ? AND not_before <= ? ORDER BY seq LIMIT ?`,
    ),
    claim: p(`UPDATE outbox SET state = 'in_flight', attempts = attempts + 1, updated_at = ? WHERE seq = ?`),
    markDone: p(`UPDATE outbox SET state = 'done', updated_at = ? WHERE key = ? AND state IN (${toDone}) RETURNING op, subject, change`),
    redactOutbox: p('UPDATE outbox SET subject = ?, record_id = ?, change = ? WHERE key = ?'),
    markRetry: p(`UPDATE outbox SET state = 'retry', not_before = ?, last_error = ?, updated_at = ? WHERE key = ? AND state IN (${toRetry})`),
    markDead: p(
      `UPDATE outbox SET state = 'dead', last_error = ?, updated_at = ? WHERE key = ? AND state IN (${toDead}) RETURNING connector_id, subject, change, attempts`,
    ),
    insertDeadLetter: p('INSERT INTO dead_letters (key, connector_id, subject, change, reason, attempts, dead_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    requeue: p(`UPDATE outbox SET state = 'pending', not_before = 0, updated_at = ? WHERE connector_id = ? AND state = 'in_flight'`),
    outboxConnectors: pluck(
      `WITH RECURSIVE c(id) AS (
         SELECT (SELECT min(connector_id) FROM outbox)
         UNION ALL SELECT (SELECT min(connector_id) FROM outbox WHERE connector_id > c.id) FROM c WHERE c.id IS NOT NULL
       ) SELECT id FROM c WHERE id IS NOT NULL`,
    ),
    depthOf: pluck(`SELECT count(*) FROM outbox WHERE connector_id = ? AND state IN (${active})`),
    nextDue: pluck(`SELECT min(not_before) FROM outbox WHERE connector_id = ? AND state = 'retry'`),
    deadLetters: p('SELECT id, change, reason, attempts, dead_at FROM dead_letters WHERE replayed_at IS NULL ORDER BY id LIMIT ?'),
    markReplayed: pluck('UPDATE dead_letters SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL RETURNING key'),
    replay: p(`UPDATE outbox SET state = 'pending', attempts = 0, not_before = 0, last_error = NULL, updated_at = ? WHERE key = ? AND state = 'dead'`),

    startRun: p(`INSERT INTO runs (kind, connector_id, status, started_at) VALUES (?, ?, 'running', ?)`),
    finishRun: p('UPDATE runs SET status = ?, finished_at = ?, stats = ?, error = ? WHERE id = ?'),
    listRuns: p('SELECT * FROM runs ORDER BY id DESC LIMIT ?'),
    lastRun: p('SELECT * FROM runs WHERE kind = ? AND connector_id IS ? ORDER BY id DESC LIMIT 1'),
    lastRunWithStatus: p('SELECT * FROM runs WHERE kind = ? AND connector_id IS ? AND status = ? ORDER BY id DESC LIMIT 1'),
    interruptRuns: p(`UPDATE runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'`),

    eraseObservations: p('DELETE FROM observations WHERE subject = ?'),
    eraseRecords: p('DELETE FROM records WHERE subject = ?'),
    eraseDecision: p('DELETE FROM decisions WHERE subject = ?'),
    eraseOutbox: p(`DELETE FROM outbox WHERE subject = ? AND op <> 'erase'`),
    eraseDeadLetters: p(`DELETE FROM dead_letters WHERE subject = ? AND key NOT IN (SELECT key FROM outbox WHERE subject = dead_letters.subject AND op = 'erase')`),
    redactEvents: p(
      `UPDATE webhook_events SET payload = NULL
       WHERE (connector_id, event_id) IN (SELECT connector_id, event_id FROM webhook_event_subjects WHERE subject = ?)`,
    ),
    eraseEventSubjects: p('DELETE FROM webhook_event_subjects WHERE subject = ?'),
    eraseSubject: p('DELETE FROM subjects WHERE subject = ?'),
    insertTombstone: p('INSERT OR IGNORE INTO tombstones (subject_hash, bucket, created_at) VALUES (?, ?, ?)'),
    insertErasureAudit: p('INSERT INTO erasure_audit (subject_hash, source, erased_at) VALUES (?, ?, ?)'),

    ledgerFirst: p(`SELECT ${OBS_COLUMNS} FROM observations ORDER BY observed_at, seq LIMIT ?`),
    ledgerAfter: p(`SELECT ${OBS_COLUMNS} FROM observations WHERE (observed_at, seq) > (?, ?) ORDER BY observed_at, seq LIMIT ?`),
    seqOf: pluck('SELECT seq FROM observations WHERE subject = ? AND id = ?'),
    erasuresAfter: p('SELECT id, subject_hash AS subjectHash, source, erased_at AS erasedAt FROM erasure_audit WHERE id > ? ORDER BY id LIMIT ?'),

    countSubjects: pluck('SELECT count(*) FROM subjects'),
    countRecords: pluck('SELECT count(*) FROM records'),
    countObservations: pluck('SELECT count(*) FROM observations'),
    countDirty: pluck('SELECT count(*) FROM subjects WHERE dirty > 0'),
    outboxByState: p('SELECT state, count(*) AS n FROM outbox GROUP BY state'),
    oldestPendingSeq: pluck(`SELECT min(seq) FROM outbox WHERE connector_id = ? AND state = 'pending' AND lane = ? AND not_before = 0`),
    enqueuedAtOf: pluck('SELECT enqueued_at FROM outbox WHERE seq = ?'),
    countDeadLetters: pluck('SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL'),
    countTombstones: pluck('SELECT count(*) FROM tombstones'),
  };
}
