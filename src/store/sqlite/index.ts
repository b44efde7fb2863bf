import { randomBytes } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { subjectHash } from '../../model/email.js';
import type { Change, Decision, Observation, RecordSnapshot } from '../../model/index.js';
import { StoreError } from '../errors.js';
import { ACTIVE_OUTBOX_STATES, OUTBOX_STATES, statesLeadingTo } from '../outbox-states.js';
import type {
  CommitReconcileOptions,
  DeadLetter,
  EncodedDecision,
  EraseOptions,
  IngestPage,
  IngestResult,
  Lane,
  OutboxItem,
  OutboxState,
  ReconcileResult,
  RunInfo,
  RunKind,
  RunStatus,
  Store,
  StoreEncoding,
  StoreReaderSpec,
  StoreStats,
  SubjectState,
  WebhookIntake,
} from '../store.js';
import { ABSORB_CHUNK, absorbChunk, createAbsorbTempTables, prepareAbsorb } from './absorb.js';
import type { AbsorbStatements } from './absorb.js';
import { BatchedInsert } from './batched-insert.js';
import { BloomFilter } from './bloom.js';
import { decodeDecision, encodeDecision } from './decisions.js';
import { OUTBOX_COLUMNS, changeOfOutboxRow, outboxBody, outboxBodyPath, type OutboxColumns } from './outbox-rows.js';
import { OutboxBatches, isBatchMember } from './outbox-batches.js';
import { RECORD_ID_IS_SUBJECT, bodyPath, encodeSqlitePullPage, mayEcho, observationBody, recordOfRow, snapshotJson, type ObservationBody, type ObsLogRow, type SqlitePullPage } from './rows.js';
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
  /** SQLite page cache, MiB (default CACHE_MIB). */
  cacheMiB?: number;
  /** Page size of a database created by this call (default 8192); ignored for existing files. */
  pageSize?: number;
  /** Log rows absorbed per transaction (default ABSORB_CHUNK); tests use small values. */
  absorbChunk?: number;
  /** Snapshots from which an empty records table is bulk-filled (default BULK_RECORDS); for tests. */
  bulkRecords?: number;
  /** Prove echo-free records at ingest (default true); tests compare with the proof off. */
  echoProof?: boolean;
  /**
   * Read-only only: read one consistent snapshot, taken at open, for the life of the connection
   * (the reconcile worker's view): every page read belongs to the same state, and the page cache
   * stays valid while the writer commits (a read transaction per query would start cold after
   * every commit of the other connection). The WAL cannot be checkpointed past this snapshot
   * until the connection closes.
   */
  snapshot?: boolean;
}

/**
 * Default page cache, MiB. Small on purpose: the store's heavy work goes in key order (appends to
 * the logs, absorb's sorted inserts, reconcile's range reads) and the OS page cache holds the
 * file anyway; and SQLite's sorter buffers up to the page cache before it spills, so absorbing a
 * large pull holds about twice this. Measured at 1M people: 16 against 64 MiB, absorb 16-18 s
 * instead of 19-20 s, the whole pipeline 110 s instead of 112 s, peak RSS about 60 MB lower.
 */
const CACHE_MIB = 16;

/** Page size of the streaming iterators. */
const STREAM_PAGE = 5000;
const LANES: readonly Lane[] = ['high', 'normal'];

/** Columns read back: [id, subject, echo 0/1, body] (statements in raw mode). */
const OBS_READ = 'id, subject, echo, body';
type ObservationRow = [string, string, number, string];

/** A loaded observation: `echo` 0/1 -> `echo: true` or no property (exactOptionalPropertyTypes). */
function fromRow(row: ObservationRow): Observation {
  const b = JSON.parse(row[3]) as ObservationBody;
  const o: Observation = {
    id: row[0],
    subject: row[1],
    source: b[0],
    recordId: b[1] === RECORD_ID_IS_SUBJECT ? row[1] : b[1],
    kind: b[2],
    channel: b[3],
    purpose: b[4],
    state: b[5],
    strength: b[6],
    statedAt: b[7],
    how: b[8],
    reference: b[9],
    evidence: b[10],
    reason: b[11],
    observedAt: b[12],
  };
  if (row[2] === 1) o.echo = true;
  return o;
}

/**
 * Is the obs_log row `l` an echo (policy rule 10; see Observation.echo)? It is when it is eligible
 * (rec_mark set: a consent observation with a record id, from the connector that ingested it) and
 * its state equals what the snapshot of its record said before it was logged: the latest rec_log
 * row of (source, record_id) logged before it (seq <= rec_mark), else the absorbed snapshot in
 * `records` (absorb never moves a snapshot logged after a waiting observation into `records`).
 * No snapshot, or no state for the scope (`''` stops the fallback to `records`): news.
 * This form (a scan of rec_log per row) serves a read-only store's view of one subject; absorb
 * computes the same for a whole batch at once (absorb.ts).
 */
const SCOPE_OF_LOG_ROW = `'$.consent."' || json_extract(l.body, ${bodyPath('channel')}) || ':' || json_extract(l.body, ${bodyPath('purpose')}) || '"'`;
const ECHO_OF_LOG_ROW = `CASE WHEN l.rec_mark IS NULL THEN 0 WHEN json_extract(l.body, ${bodyPath('state')}) = coalesce(
    (SELECT coalesce(json_extract(p.snapshot, ${SCOPE_OF_LOG_ROW}), '') FROM rec_log AS p
      WHERE p.connector_id = l.source AND p.record_id = l.record_id AND p.seq <= l.rec_mark ORDER BY p.seq DESC LIMIT 1),
    (SELECT json_extract(r.snapshot, ${SCOPE_OF_LOG_ROW}) FROM records AS r
      WHERE r.connector_id = l.source AND r.record_id = l.record_id)
  ) THEN 1 ELSE 0 END`;

const sqlList = (values: readonly string[]): string => values.map((v) => `'${v}'`).join(', ');

/**
 * The superseding of the rows a bulk commit adds to the outbox, done in one statement per commit
 * rather than one per row (measured at 1M people: the per-row UPDATE was 3.6 s of the reconcile's
 * 12.6 s of outbox inserts). The statement reads the state before it, which gives what a supersede
 * per added row in seq order would: every pending or retrying row of a target older than the
 * newest added row of that target is superseded. Only rows added since the last flush count as
 * "added"; a row re-armed by key (an older seq) supersedes on its own, after a flush (before it is
 * pending again, so that rows added before it do not supersede it).
 */
interface SupersedeBatch {
  /** A row was added (and waits for the flush to supersede). */
  added(): void;
  flush(): void;
}

/** A bulk commit's changes of one connector: erasures (always one row each) apart, and the subjects' range. */
function bulkPart(group: readonly Change[]): { changes: Change[]; erasures: Change[]; min: string; max: string } | null {
  const changes: Change[] = [];
  const erasures: Change[] = [];
  let min = '';
  let max = '';
  for (const c of group) {
    if (c.op === 'erase') {
      erasures.push(c);
      continue;
    }
    if (changes.length === 0 || c.subject < min) min = c.subject;
    if (changes.length === 0 || c.subject > max) max = c.subject;
    changes.push(c);
  }
  return changes.length === 0 ? null : { changes, erasures, min, max };
}

/** Columns of a stored snapshot read back: the key columns, and the rest as JSON (statements in raw mode). */
const REC_READ = 'subject, connector_id, record_id, snapshot';
type RecordRow = [string, string, string, string];

function fromRecordRow(row: RecordRow): RecordSnapshot {
  const body = JSON.parse(row[3]) as Pick<RecordSnapshot, 'consent' | 'suppressed' | 'meta'>;
  return { connectorId: row[1], recordId: row[2], subject: row[0], consent: body.consent, suppressed: body.suppressed, meta: body.meta };
}

/** A claimed row as the claim's RETURNING gives it (raw): seq, OUTBOX_COLUMNS, lane, attempts, not_before, last_error, enqueued_at. */
type ClaimedRow = [number, ...OutboxColumns, Lane, number, number, string | null, string];

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
  readonly encoding: StoreEncoding = 'sqlite';
  private readonly db: Database.Database;
  private readonly s: ReturnType<typeof prepareStatements>;
  /** A bulk reconcile's changes, many to a row (outbox-batches.ts). */
  private readonly batches: OutboxBatches;
  /** Tombstone buckets, cached per meta 'tombstones_gen' (bumped by every erasure, any process). */
  private buckets: { gen: string; set: Set<number> } | null = null;
  private readonly absorbChunk: number;
  private readonly bulkRecords: number | undefined;
  private readonly echoProof: boolean;
  private readonly a: AbsorbStatements;
  /** The staging logs' appends (multi-row in ingestPage) and a reconcile commit's decision upserts. */
  private readonly logs: { obsLog: BatchedInsert; recLog: BatchedInsert; decisions: BatchedInsert };
  /**
   * Per connector, the record ids logged by its current pull run: proves that a record's first
   * snapshot in a run has no earlier one in that run (see ingestPage). Bounded: one filter each.
   */
  private readonly runRecords = new Map<string, { run: number; seen: BloomFilter }>();
  private exportGen = 0;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    this.path = path;
    this.readonly = opts.readonly === true;
    this.absorbChunk = Math.max(1, Math.floor(opts.absorbChunk ?? ABSORB_CHUNK));
    this.bulkRecords = opts.bulkRecords;
    this.echoProof = opts.echoProof !== false;
    const db = new Database(path, this.readonly ? { readonly: true, fileMustExist: true } : {});
    this.db = db;
    try {
      db.pragma('busy_timeout = 5000');
      db.pragma(`cache_size = ${-1024 * Math.max(2, Math.floor(opts.cacheMiB ?? CACHE_MIB))}`);
      // temp_store stays the default (FILE): absorb sorts a chunk of log rows (snapshots included)
      // by subject; in memory that sort would grow the RSS with the chunk, on file it spills.
      if (!this.readonly) {
        const fresh = db.prepare("SELECT count(*) FROM sqlite_master WHERE type = 'table'").pluck().get() === 0;
        if (fresh) db.pragma(`page_size = ${opts.pageSize ?? 8192}`);
        // Every acknowledged write must survive a crash or a power loss: WAL + fsync on commit.
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        // A bulk absorb writes its whole batch to the WAL; once checkpointed, the file shrinks back.
        db.pragma('journal_size_limit = 67108864');
        db.pragma('foreign_keys = ON');
        // One helper thread for SQLite's large sorts (absorb sorts a whole pull by subject): the
        // sort's runs are built on the second core while this thread goes on. Measured at 1M
        // (absorb alone, same post-pull database): 18.8-22.2 s without, 16.7 s with 1, 16.5 s with
        // 2; peak RSS +17 MB with 1 (each helper sorts within the page cache), +33 MB with 2.
        db.pragma('threads = 1');
        migrate(db, path);
        this.schemaVersion = LATEST_SCHEMA_VERSION;
      } else {
        this.schemaVersion = checkSchema(db, path);
      }
      createAbsorbTempTables(db);
      db.exec('CREATE TEMP TABLE IF NOT EXISTS ledger_order (gen INTEGER NOT NULL, pos INTEGER NOT NULL, subject TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (gen, pos)) WITHOUT ROWID');
      this.a = prepareAbsorb(db);
      this.logs = {
        obsLog: new BatchedInsert(db, 'obs_log', ['subject', 'id', 'source', 'record_id', 'rec_mark', 'body']),
        recLog: new BatchedInsert(db, 'rec_log', ['subject', 'connector_id', 'record_id', 'snapshot', 'run']),
        // A reconcile commit's decisions, many to a statement (one statement each: 3.7 s more CPU at 1M people).
        decisions: new BatchedInsert(db, 'decisions', ['subject', 'decision', 'decided_at'], 64, 'ON CONFLICT (subject) DO UPDATE SET decision = excluded.decision, decided_at = excluded.decided_at'),
      };
      this.s = prepareStatements(db);
      this.batches = new OutboxBatches(db);
      this.salt = opts.salt ?? this.storedSalt();
      if (this.readonly && opts.snapshot === true) {
        db.exec('BEGIN');
        db.prepare('SELECT count(*) FROM meta').pluck().get();
      }
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
    const echo = recMark !== null && mayEcho(o.kind, o.recordId ?? null, o.source, connectorId);
    this.logs.obsLog.run(o.subject, o.id, o.source, o.recordId ?? null, echo ? recMark : null, observationBody(o));
  }

  /** The snapshot column holds what the key columns do not (subject, connector and record ids are columns). */
  private logRecord(r: RecordSnapshot, runId: number | null): void {
    this.logs.recLog.run(r.subject, r.connectorId, r.recordId, snapshotJson(r), runId);
  }

  /**
   * Move the staging logs into the subject-clustered tables: observations (duplicates ignored),
   * records (per record, the latest logged snapshot wins; last_seen_run = the latest pull run that
   * saw it) and the dirty flags of every subject concerned. Sorted by subject, in chunks of
   * ABSORB_CHUNK rows (a whole full pull at once: see absorb.ts), each chunk one transaction; the
   * event loop gets a turn between chunks.
   * Every read that needs subjects, observations or records calls this first; a read-only store
   * cannot, and reads the logs as well where it matters (subjectState).
   *
   * Echoes (policy rule 10): each observation is flagged while it moves, against the snapshot its
   * record had before the observation was logged (absorb.ts): the snapshots of the same
   * chunk move only after its observations, and never past the mark of an observation still waiting.
   * Pull pages, webhook intake and pushed snapshots (completeOutbox) all come through these logs,
   * so the snapshot of our own push is "before" the pull or webhook that echoes it.
   */
  async absorb(): Promise<void> {
    this.live();
    if (this.readonly) return;
    // Cheap check outside any write transaction: nothing waiting is the common case.
    if (this.a.minObsLog.get() === null && this.a.minRecLog.get() === null) return;
    for (;;) {
      const more = this.bulkTx(() => absorbChunk(this.db, this.a, this.absorbChunk, this.bulkRecords));
      if (!more) return;
      await yieldToLoop();
    }
  }

  /** The filter of record ids logged by this connector's run (a new run starts a new one). */
  private runRecordsOf(connectorId: string, runId: number): BloomFilter {
    let r = this.runRecords.get(connectorId);
    if (r?.run !== runId) {
      r = { run: runId, seen: new BloomFilter() };
      this.runRecords.set(connectorId, r);
    }
    return r.seen;
  }

  /** Distinct connector ids of the outbox (loose index scan: one seek per connector). */
  private outboxConnectors(): string[] {
    return this.s.outboxConnectors.all() as string[];
  }

  /**
   * Enqueue one change: idempotent by key. A key seen before is re-armed if it was done (the
   * record drifted after our push) or, when `reviveDead`, dead. A change that is new (or re-armed)
   * supersedes the pending/retry rows of the same target with another key. `batch` (a bulk
   * commit): a new row's superseding is left to `batch.flush()`, one statement for every row the
   * commit added (see SupersedeBatch); a re-armed row flushes the batch first, so the rows
   * supersede in the order they were queued.
   */
  private enqueue(c: Change, lane: Lane, now: string, reviveDead: boolean, inFlight: ReadonlySet<string> | null = null, batch: SupersedeBatch | null = null): boolean {
    // The same target is being pushed right now under another key (a statement that arrived while
    // it was in flight, e.g. a platform's webhook for that very push, decided the scope anew): the
    // push in flight will land it, and retries if it fails. Queueing it again would push it twice.
    // `inFlight`: the connectors known (in this transaction) to have something in flight; a bulk
    // commit skips the lookup for the others.
    // The rows of that target queued before this change are still replaced by it (the push in
    // flight carries its value): left pending, an older value would land after the newest one.
    if ((inFlight === null || inFlight.has(c.connectorId)) && this.s.inFlightSameTarget.get(c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.target, c.key) !== undefined) {
      batch?.flush();
      this.s.supersede.run(now, c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.key);
      return false;
    }
    const body = outboxBody(c);
    const insert = (): boolean => this.s.insertOutbox.run(c.key, c.connectorId, c.recordId, c.subject, c.op, c.channel, c.purpose, lane, body, now, now).changes > 0;
    if (insert()) {
      if (batch === null) this.s.supersede.run(now, c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.key);
      else batch.added();
      return true;
    }
    // Before a re-armed row is pending again: the rows added before it must not supersede it.
    batch?.flush();
    // The same change decided again after another replaced it (a denial, a grant, the denial again):
    // queued anew, behind that other one. Kept superseded, the newest decision would never be pushed.
    if (this.s.dropSuperseded.run(c.subject, c.key).changes > 0 && insert()) {
      this.s.supersede.run(now, c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.key);
      return true;
    }
    const rearmed = (reviveDead ? this.s.rearmDoneOrDead : this.s.rearmDone).run(lane, body, now, c.subject, c.key).changes > 0;
    if (!rearmed) {
      // Already queued or in flight (or dead, not revived here): it stays the newest decision for its
      // target, so the rows of that target queued since it are replaced, as a new row would replace them.
      this.s.supersede.run(now, c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.key);
      if (lane === 'high') this.s.raiseLane.run(now, c.subject, c.key);
      return false;
    }
    this.s.supersede.run(now, c.connectorId, c.recordId, c.op, c.channel, c.purpose, c.key);
    return true;
  }

  /**
   * A failed (retry), requeued or replayed (pending) row whose target has a newer row is
   * superseded: pushed later, it would overwrite the newer decision (an opt-out queued while a
   * grant was in flight).
   */
  private supersedeIfNewer(seq: number, now: string): void {
    if (this.s.newerOfTarget.get(seq) !== undefined) this.s.supersedeOne.run(now, seq);
  }

  /** A SupersedeBatch for the rows this transaction adds to the outbox from now on. */
  private supersedeBatch(now: string): SupersedeBatch {
    const maxSeq = (): number => (this.s.maxOutboxSeq.get() as number | null) ?? 0;
    let before = maxSeq();
    let waiting = 0;
    return {
      added: () => {
        waiting++;
      },
      flush: () => {
        if (waiting === 0) return;
        this.s.supersedeAddedAfter.run(now, before);
        before = maxSeq();
        waiting = 0;
      },
    };
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

  async ingestPage(connectorId: string, runId: number, input: IngestPage, cursor: string | null): Promise<IngestResult> {
    // One path: objects are encoded here, a pull worker's pages come encoded (page-encoding.ts).
    const page = ('encoding' in input ? input : encodeSqlitePullPage(input)) as SqlitePullPage;
    if (page.encoding !== 'sqlite') throw new StoreError('STORE_BAD_PAGE', `a page encoded for "${String(page.encoding)}" cannot be written to a SQLite store`);
    return this.bulkTx(() => {
      const isTombstoned = this.tombstoneFilter();
      const mark = this.recMark();
      // Echoes (rule 10) compare an observation with the snapshot its record had before this page.
      // When the store holds no record of this connector and the log none but this run's, such a
      // snapshot can only be an earlier page's of this run: a record the run's filter has certainly
      // not seen has none, and its observations are news (no mark: absorb need not look).
      const ran = this.runRecordsOf(connectorId, runId);
      const nothingBefore =
        this.echoProof && this.s.anyRecordOf.get(connectorId) === undefined && this.s.otherRunLogged.get({ c: connectorId, r: runId }) === undefined;
      // An empty ledger (a first load) holds none of them: one probe per page instead of one per row.
      const ledgerHolds = this.a.anyObservation.get() !== undefined;
      const tombstoned = new Map<string, RecordSnapshot>();
      const tombstonedObs: ObsLogRow[] = [];
      const seen = new Set<string>();
      let observationsAdded = 0;
      let recordsUpserted = 0;
      const { obsLog, recLog } = this.logs;
      obsLog.begin();
      recLog.begin();
      for (const o of page.observations) {
        const [subject, id, , recordId] = o;
        if (isTombstoned(subject)) {
          tombstonedObs.push(o);
          continue;
        }
        // Already in the ledger (a nightly re-pull) or twice in this page: nothing to add.
        if (seen.has(id) || (ledgerHolds && this.s.hasObs.get(subject, id) !== undefined)) continue;
        seen.add(id);
        const [, , source, , kind, body] = o;
        const echo = mayEcho(kind, recordId, source, connectorId) && !(nothingBefore && !ran.has(recordId as string));
        obsLog.add(subject, id, source, recordId, echo ? mark : null, body);
        observationsAdded++;
      }
      for (const r of page.records) {
        const [subject, recConnector, recordId, snapshot] = r;
        if (isTombstoned(subject)) {
          tombstoned.set(`${recConnector}\u0000${recordId}`, recordOfRow(r));
          continue;
        }
        recLog.add(subject, recConnector, recordId, snapshot, runId);
        if (recConnector === connectorId) ran.add(recordId);
        recordsUpserted++;
      }
      // Observations of erased people that came without their record: report the record they name.
      for (const [subject, , , recordOf] of tombstonedObs) {
        const recordId = recordOf ?? subject;
        const k = `${connectorId}\u0000${recordId}`;
        if (!tombstoned.has(k)) tombstoned.set(k, { connectorId, recordId, subject, consent: {}, suppressed: {}, meta: {} });
      }
      obsLog.flush();
      recLog.flush();
      // A null cursor means "no resumable position yet": keep the previous one.
      if (cursor !== null) this.s.saveCursor.run(connectorId, cursor, new Date().toISOString());
      return { observationsAdded, recordsUpserted, tombstoned: [...tombstoned.values()] };
    });
  }

  async dropUnseenRecords(connectorId: string, runId: number): Promise<number> {
    // The first pull of a connector: the store holds no record of it and the log only this run's,
    // so nothing can be unseen, and the log can wait to be absorbed with the other pulls' in one pass.
    this.live();
    if (this.s.anyRecordOf.get(connectorId) === undefined && this.s.otherRunLogged.get({ c: connectorId, r: runId }) === undefined) return 0;
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

  encodeDecision(decision: Decision): EncodedDecision {
    return encodeDecision(decision) as EncodedDecision;
  }

  async dirtyCount(): Promise<number> {
    await this.absorb();
    return this.s.countDirty.get() as number;
  }

  async dirtySplits(parts: number): Promise<string[]> {
    await this.absorb();
    const n = this.s.countDirty.get() as number;
    const splits: string[] = [];
    for (let k = 1; k < parts; k++) {
      const at = Math.floor((k * n) / parts) - 1;
      if (at < 0) continue;
      const subject = this.s.dirtyAt.get(at) as string | undefined;
      if (subject !== undefined && subject !== splits[splits.length - 1]) splits.push(subject);
    }
    return splits;
  }

  async readerSpec(): Promise<StoreReaderSpec | null> {
    // An in-memory (or temporary) database exists in this connection only.
    if (this.path === ':memory:' || this.path === '') return null;
    await this.absorb();
    return { kind: 'sqlite', path: this.path, salt: this.salt };
  }

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
      const st: SubjectState = { subject: r.subject, observations: [], records: [], dirty: r.dirty };
      bySubject.set(r.subject, st);
      states.push(st);
    }
    const first = (rows[0] as { subject: string }).subject;
    const last = (rows[rows.length - 1] as { subject: string }).subject;
    // Every subject between the first and the last is in the page (a full reconcile): read the range.
    if (rows.length > 1 && this.s.countSubjectsIn.get(first, last) === rows.length) this.loadRange(bySubject, first, last);
    else this.loadInto(bySubject);
    return states;
  }

  /** Observations and records of the given subjects: one query each. */
  private loadInto(bySubject: Map<string, SubjectState>): void {
    const list = JSON.stringify([...bySubject.keys()]);
    this.fill(bySubject, this.s.obsOfSubjects.all(list) as ObservationRow[], this.s.recordsOfSubjects.all(list) as RecordRow[]);
  }

  /**
   * The same for the subjects from `first` to `last`, all in the map: two range reads in key order.
   * Read whole (`all`, a page of subjects is bounded): stepping a statement row by row from JS
   * cost 1.4x as much (measured at 1M people: 6.2 s against 4.5 s for every row of both tables).
   */
  private loadRange(bySubject: Map<string, SubjectState>, first: string, last: string): void {
    this.fill(bySubject, this.s.obsOfRange.all(first, last) as ObservationRow[], this.s.recordsOfRange.all(first, last) as RecordRow[]);
  }

  private fill(bySubject: Map<string, SubjectState>, obs: readonly ObservationRow[], records: readonly RecordRow[]): void {
    let st: SubjectState | undefined;
    for (const row of obs) {
      if (st?.subject !== row[1]) st = bySubject.get(row[1]);
      st?.observations.push(fromRow(row));
    }
    st = undefined;
    for (const row of records) {
      if (st?.subject !== row[0]) st = bySubject.get(row[0]);
      st?.records.push(fromRecordRow(row));
    }
  }

  async subjectOfRecord(connectorId: string, recordId: string): Promise<string | null> {
    await this.absorb();
    const subject = this.s.subjectOfRecord.get(connectorId, recordId) as string | undefined;
    return subject ?? null;
  }

  async subjectStates(subjects: readonly string[]): Promise<SubjectState[]> {
    if (this.readonly) {
      const out: SubjectState[] = [];
      for (const s of subjects) out.push(await this.subjectState(s));
      return out;
    }
    await this.absorb();
    const bySubject = new Map<string, SubjectState>();
    for (const subject of subjects) if (!bySubject.has(subject)) bySubject.set(subject, { subject, observations: [], records: [] });
    for (let i = 0; i < subjects.length; i += STREAM_PAGE) {
      const part = new Map<string, SubjectState>();
      for (const subject of subjects.slice(i, i + STREAM_PAGE)) part.set(subject, bySubject.get(subject) as SubjectState);
      this.loadInto(part);
    }
    // A subject asked for twice gets two states, as two subjectState calls would.
    const given = new Set<string>();
    return subjects.map((subject) => {
      const st = bySubject.get(subject) as SubjectState;
      if (!given.has(subject)) {
        given.add(subject);
        return st;
      }
      return { subject, observations: [...st.observations], records: [...st.records] };
    });
  }

  async subjectState(subject: string): Promise<SubjectState> {
    await this.absorb();
    const st: SubjectState = { subject, observations: [], records: [] };
    this.loadInto(new Map([[subject, st]]));
    if (this.readonly) {
      // Cannot absorb: add what still waits in the logs (a scan, fine for one person).
      const ids = new Set(st.observations.map((o) => o.id));
      for (const row of this.s.obsLogOf.all(subject) as ObservationRow[]) {
        if (ids.has(row[0])) continue;
        ids.add(row[0]);
        st.observations.push(fromRow(row));
      }
      const latest = new Map(st.records.map((r) => [`${r.connectorId}\u0000${r.recordId}`, r]));
      for (const row of this.s.recLogOf.all(subject) as RecordRow[]) {
        const r = fromRecordRow(row);
        latest.set(`${r.connectorId}\u0000${r.recordId}`, r);
      }
      st.records = [...latest.values()];
    }
    return st;
  }

  async commitReconcile(results: ReconcileResult[], lane: Lane, opts: CommitReconcileOptions = {}): Promise<{ enqueued: number }> {
    await this.absorb();
    // Not fsynced (bulkTx): all of it is derived from durable observations and redone if lost to a
    // power loss, since the dirty flags it clears are lost with it (a change pushed meanwhile is
    // planned again under the same key and pushed again: pushes are idempotent).
    return this.bulkTx(() => {
      const now = new Date().toISOString();
      let isTombstoned: ((subject: string) => boolean) | null = null;
      let enqueued = 0;
      const current = new Map<string, number>();
      for (const row of this.s.dirtyOf.iterate(JSON.stringify(results.map((r) => r.subject))) as IterableIterator<{ subject: string; dirty: number }>) {
        current.set(row.subject, row.dirty);
      }
      const clear: string[] = [];
      const inFlight = new Set(this.outboxConnectors().filter((id) => this.s.anyInFlight.get(id) !== undefined));
      const byConnector = new Map<string, Change[]>();
      const { decisions } = this.logs;
      decisions.begin();
      for (const r of results) {
        const dirty = current.get(r.subject);
        if (dirty === undefined) {
          // Erased while it was being decided: writing now would bring the person back.
          isTombstoned ??= this.tombstoneFilter();
          if (isTombstoned(r.subject)) continue;
        }
        decisions.add(r.subject, typeof r.decision === 'string' ? r.decision : encodeDecision(r.decision), now);
        for (const c of r.changes) {
          let group = byConnector.get(c.connectorId);
          if (group === undefined) byConnector.set(c.connectorId, (group = []));
          group.push(c);
        }
        if (dirty !== undefined && dirty > 0) {
          // Marked again since it was read (a webhook meanwhile): leave it dirty for the next pass.
          if (r.dirty === undefined || r.dirty === dirty) clear.push(r.subject);
        }
      }
      decisions.flush();
      // One connector after the other (each in plan order): the outbox rows a claim, and then a
      // completion, rewrite are contiguous, not interleaved with three other connectors' rows on
      // every page (measured at 1M: claim + completion of the whole outbox 36 s interleaved, 14 s grouped).
      const batch = this.supersedeBatch(now);
      for (const [connectorId, group] of byConnector) {
        const bulk = opts.bulk === true && lane === 'normal' ? bulkPart(group) : null;
        if (bulk !== null && this.batches.accepts(connectorId, bulk.min, bulk.max)) {
          enqueued += this.batches.enqueue(connectorId, bulk.changes, now);
          for (const c of bulk.erasures) if (this.enqueue(c, lane, now, false, inFlight, batch)) enqueued++;
        } else {
          for (const c of group) if (this.enqueue(c, lane, now, false, inFlight, batch)) enqueued++;
        }
      }
      batch.flush();
      if (clear.length > 0) this.s.clearDirtyOf.run(JSON.stringify(clear));
      return { enqueued };
    });
  }

  async decision(subject: string): Promise<Decision | null> {
    this.live();
    const json = this.s.getDecision.get(subject) as string | undefined;
    return json === undefined ? null : decodeDecision(subject, json);
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
      // The seqs first (index only), high lane first, each lane in enqueue order; then one UPDATE
      // for the whole batch (a statement per row cost more than the row's own work).
      const picked: number[] = [];
      for (const lane of LANES) {
        const need = limit - picked.length;
        if (need <= 0) break;
        const pending = this.s.duePending.all(connectorId, lane, need) as number[];
        const retry = this.s.dueRetry.all(connectorId, lane, now, need) as number[];
        const merged = retry.length === 0 ? pending : [...pending, ...retry].sort((a, b) => a - b);
        for (let i = 0; i < need && i < merged.length; i++) picked.push(merged[i] as number);
      }
      const at = new Date().toISOString();
      // Then, with the room left, the oldest batches (a bulk reconcile's changes, all lane normal).
      const fromBatches = (): OutboxItem[] => (picked.length < limit ? this.batches.claim(connectorId, limit - picked.length, at, this.tombstoneFilter()) : []);
      if (picked.length === 0) return fromBatches();
      // RETURNING comes in no particular order: back to the picked one. Row by row (iterate), so
      // that each row's text is garbage before the next is read, not a whole batch of them.
      const position = new Map<number, number>();
      for (let i = 0; i < picked.length; i++) position.set(picked[i] as number, i);
      const items = new Array<OutboxItem>(picked.length);
      for (const row of this.s.claim.iterate(at, JSON.stringify(picked)) as IterableIterator<ClaimedRow>) {
        items[position.get(row[0]) as number] = {
          id: row[0],
          change: changeOfOutboxRow(row, 1),
          lane: row[9],
          state: 'in_flight',
          attempts: row[10],
          notBefore: row[11],
          lastError: row[12],
          enqueuedAt: row[13],
        };
      }
      for (const item of fromBatches()) items.push(item);
      return items;
    });
  }

  async completeOutbox(ids: readonly number[], snapshots: RecordSnapshot[]): Promise<void> {
    // Lost to a power loss, the items are pushed again (pushes are idempotent) and the next pull reads the snapshots.
    this.bulkTx(() => {
      const now = new Date().toISOString();
      const rows = ids.filter((id) => !isBatchMember(id));
      if (rows.length < ids.length) this.batches.complete(ids.filter(isBatchMember), now);
      // One UPDATE for the batch; it names only the erase changes it completed (null for the rest).
      if (rows.length > 0) {
        for (const seq of this.s.markDone.all(now, JSON.stringify(rows)) as Array<number | null>) {
          if (seq === null) continue;
          // The erasure went through: keep the fact, not the person.
          const c = changeOfOutboxRow(this.s.outboxChangeOf.get(seq) as unknown[]);
          const hash = subjectHash(c.subject, this.salt);
          // Record ids may be the address itself (SendGrid) or derived from it (Mailchimp's MD5).
          const redacted: Change = { ...c, subject: hash, recordId: subjectHash(c.recordId, this.salt), meta: {} };
          this.s.redactOutbox.run(hash, redacted.recordId, outboxBody(redacted), seq);
        }
      }
      // Through the log, so that the pushed snapshot lands after any pulled one still waiting there.
      const isTombstoned = this.tombstoneFilter();
      for (const r of snapshots) if (!isTombstoned(r.subject)) this.logRecord(r, null);
    });
  }

  async retryOutbox(id: number, notBefore: number, error: string): Promise<void> {
    // Lost to a power loss, the item is in flight again and retried at the next start.
    this.bulkTx(() => {
      const now = new Date().toISOString();
      if (isBatchMember(id)) this.batches.split(id, 'retry', notBefore, error, now);
      else if (this.s.markRetry.run(notBefore, error, now, id).changes > 0) this.supersedeIfNewer(id, now);
    });
  }

  async killOutbox(id: number, reason: string): Promise<void> {
    this.tx(() => {
      const now = new Date().toISOString();
      if (isBatchMember(id)) {
        const split = this.batches.split(id, 'dead', 0, reason, now);
        if (split !== null) {
          const c = split.change;
          this.s.insertDeadLetter.run(c.key, c.connectorId, c.subject, JSON.stringify(c), reason, split.attempts, now);
        }
        return;
      }
      // Replaced meanwhile by a newer change for its target: not a failure to act on (nor to replay).
      if (this.s.newerOfTarget.get(id) !== undefined) {
        // in_flight -> retry -> superseded: the transitions the state machine allows.
        if (this.s.markRetry.run(0, reason, now, id).changes > 0) this.s.supersedeOne.run(now, id);
        return;
      }
      const row = this.s.markDead.get(reason, now, id) as [...OutboxColumns, number] | undefined;
      if (row === undefined) return;
      // A dead letter keeps the whole change (few rows; read as it is by listDeadLetters).
      const c = changeOfOutboxRow(row);
      this.s.insertDeadLetter.run(c.key, c.connectorId, c.subject, JSON.stringify(c), reason, row[8], now);
    });
  }

  async requeueInFlight(connectorId?: string): Promise<number> {
    return this.tx(() => {
      const now = new Date().toISOString();
      let n = 0;
      for (const id of connectorId === undefined ? this.outboxConnectors() : [connectorId]) {
        // A row whose target got a newer row while it was in flight goes, as a failed push does.
        for (const seq of this.s.requeue.all(now, id) as number[]) {
          this.supersedeIfNewer(seq, now);
          n++;
        }
      }
      return n + this.batches.requeue(connectorId, now);
    });
  }

  async outboxDepth(): Promise<Record<string, number>> {
    this.live();
    const depth: Record<string, number> = {};
    for (const id of this.outboxConnectors()) {
      const n = this.s.depthOf.get(id) as number;
      if (n > 0) depth[id] = n;
    }
    for (const [id, n] of this.batches.depth()) depth[id] = (depth[id] ?? 0) + n;
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
      const row = this.s.markReplayed.get(now, id) as [subject: string, key: string] | undefined;
      if (row === undefined) return false;
      const seq = this.s.replay.get(now, row[0], row[1]) as number | undefined;
      // A newer change for the target was queued since: the old one must not land after it.
      if (seq !== undefined) this.supersedeIfNewer(seq, now);
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

  async eraseSubject(subject: string, hash: string, source: string, erasures: Change[], opts: EraseOptions = {}): Promise<void> {
    this.live();
    if (hash !== subjectHash(subject, this.salt)) {
      throw new StoreError('STORE_SALT_MISMATCH', 'subject hash was not made with this store\'s salt: the tombstone would never match');
    }
    await this.absorb();
    // A redoable erasure (a full reconcile's) is not fsynced: lost to a power loss, it goes as a
    // whole, and the durable erasure request that caused it is still there with its subject dirty,
    // so it is erased again. Measured at 1M people with 1,047 erasures: 3.7 s of fsyncs.
    (opts.redoable === true ? this.bulkTx.bind(this) : this.tx.bind(this))(() => {
      const now = new Date().toISOString();
      const s = this.s;
      // Rows logged after the absorb above (none in one process; another process may race).
      s.eraseObsLog.run(subject);
      s.eraseRecLog.run(subject);
      s.eraseObservations.run(subject);
      s.eraseRecords.run(subject);
      s.eraseDecision.run(subject);
      s.eraseOutbox.run(subject);
      this.batches.scrub(subject, now);
      s.eraseDeadLetters.run(subject);
      s.redactEvents.run(subject);
      s.eraseEventSubjects.run(subject);
      s.eraseSubject.run(subject);
      s.insertTombstone.run(hash, saltedBucket(this.salt, subject), now);
      s.bumpTombstonesGen.run();
      s.insertErasureAudit.run(hash, source, now);
      for (const c of erasures) this.enqueue(c, 'high', now, true);
    });
  }

  async isTombstoned(hash: string): Promise<boolean> {
    this.live();
    return this.s.tombstone.get(hash) !== undefined;
  }

  // ---- audit, status ----------------------------------------------------------------

  async *iterateObservations(): AsyncIterable<Observation> {
    await this.absorb();
    this.live();
    // The ledger order (observedAt, then insertion) is sorted once per export into a temp table:
    // no index is kept for it (pulls would rewrite it at random; see migration 3). The export is the
    // ledger as it stood when it started; a row erased meanwhile is skipped.
    const gen = ++this.exportGen;
    const total = this.s.ledgerSnapshot.run(gen).changes;
    try {
      for (let from = 0; from < total; from += STREAM_PAGE) {
        this.live();
        const rows = (this.s.ledgerPage.all(gen, from, from + STREAM_PAGE) as ObservationRow[]).map(fromRow);
        yield* rows;
      }
    } finally {
      if (this.db.open) this.s.ledgerDrop.run(gen);
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
    const inBatches = this.batches.counts();
    outbox.pending += inBatches.pending;
    outbox.in_flight += inBatches.in_flight;
    outbox.done += inBatches.done;
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
      oldestPendingAt: earliest(oldestSeq === null ? null : ((s.enqueuedAtOf.get(oldestSeq) as string | undefined) ?? null), this.batches.oldestPendingAt()),
      deadLetters: s.countDeadLetters.get() as number,
      tombstones: s.countTombstones.get() as number,
    };
  }
}

/** The earlier of two ISO timestamps (either may be missing). */
function earliest(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
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
    recMark: pluck(`SELECT seq FROM sqlite_sequence WHERE name = 'rec_log'`),
    nextRecMark: pluck('SELECT rec_mark FROM obs_log WHERE seq > ? AND rec_mark IS NOT NULL ORDER BY seq LIMIT 1'),
    anyRecordOf: pluck('SELECT 1 FROM records WHERE connector_id = ? LIMIT 1'),
    // rec_log_run: (connector, NULL) rows, then runs before and after this one.
    otherRunLogged: pluck(
      `SELECT 1 FROM (
         SELECT 1 FROM rec_log WHERE connector_id = @c AND run IS NULL
         UNION ALL SELECT 1 FROM rec_log WHERE connector_id = @c AND run < @r
         UNION ALL SELECT 1 FROM rec_log WHERE connector_id = @c AND run > @r
       ) LIMIT 1`,
    ),
    obsLogOf: p(`SELECT l.id, l.subject, ${ECHO_OF_LOG_ROW} AS echo, l.body FROM obs_log AS l WHERE l.subject = ? ORDER BY l.seq`).raw(true),
    recLogOf: p(`SELECT ${REC_READ} FROM rec_log WHERE subject = ? ORDER BY seq`).raw(true),
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
    obsOfSubjects: p(`SELECT ${OBS_READ} FROM observations WHERE subject IN (SELECT value FROM json_each(?))`).raw(true),
    recordsOfSubjects: p(`SELECT ${REC_READ} FROM records WHERE subject IN (SELECT value FROM json_each(?))`).raw(true),
    countSubjectsIn: pluck('SELECT count(*) FROM subjects WHERE subject >= ? AND subject <= ?'),
    obsOfRange: p(`SELECT ${OBS_READ} FROM observations WHERE subject >= ? AND subject <= ?`).raw(true),
    recordsOfRange: p(`SELECT ${REC_READ} FROM records WHERE subject >= ? AND subject <= ?`).raw(true),
    dirtyOf: p('SELECT subject, dirty FROM subjects WHERE subject IN (SELECT value FROM json_each(?))'),
    clearDirtyOf: p('UPDATE subjects SET dirty = 0 WHERE subject IN (SELECT value FROM json_each(?))'),
    markAllDirty: p('UPDATE subjects SET dirty = dirty + 1'),
    getDecision: pluck('SELECT decision FROM decisions WHERE subject = ?'),

    insertOutbox: p(
      `INSERT OR IGNORE INTO outbox (key, connector_id, record_id, subject, op, channel, purpose, lane, state, attempts, not_before, last_error, change, enqueued_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, 0, NULL, ?, ?, ?)`,
    ),
    // A row is found by (subject, key), its unique index since migration 5. A completed erasure's
    // row was redacted (its subject is a hash): planned again, the erasure gets a new row instead.
    // The body is written again (rule and meta are not part of the key).
    // A re-armed row takes the next seq: seq order is the order of decisions (see newerOfTarget).
    rearmDone: p(
      `UPDATE outbox SET seq = (SELECT max(seq) + 1 FROM outbox), state = 'pending', lane = ?, change = ?, attempts = 0, not_before = 0, last_error = NULL, updated_at = ?
       WHERE subject = ? AND key = ? AND state = 'done'`,
    ),
    rearmDoneOrDead: p(
      `UPDATE outbox SET seq = (SELECT max(seq) + 1 FROM outbox), state = 'pending', lane = ?, change = ?, attempts = 0, not_before = 0, last_error = NULL, updated_at = ?
       WHERE subject = ? AND key = ? AND state IN ('done', 'dead')`,
    ),
    raiseLane: p(`UPDATE outbox SET lane = 'high', updated_at = ? WHERE subject = ? AND key = ? AND lane = 'normal' AND state IN ('pending', 'retry')`),
    supersede: p(
      `UPDATE outbox SET state = 'superseded', updated_at = ?
       WHERE connector_id = ? AND record_id = ? AND op = ? AND channel = ? AND purpose = ? AND state IN (${toSuperseded}) AND key <> ?`,
    ),
    maxOutboxSeq: pluck('SELECT max(seq) FROM outbox'),
    // Every row added after seq ? supersedes the pending or retrying rows of its target queued
    // before it: what a supersede per added row, in seq order, leaves (see SupersedeBatch).
    supersedeAddedAfter: p(
      `UPDATE outbox SET state = 'superseded', updated_at = ? WHERE seq IN (
         SELECT o.seq FROM outbox AS n JOIN outbox AS o INDEXED BY outbox_target
           ON o.connector_id = n.connector_id AND o.record_id = n.record_id AND o.op = n.op AND o.channel = n.channel AND o.purpose = n.purpose
         WHERE n.seq > ? AND o.state IN (${toSuperseded}) AND o.seq < n.seq)`,
    ),
    anyInFlight: pluck(`SELECT 1 FROM outbox WHERE connector_id = ? AND state = 'in_flight' LIMIT 1`),
    inFlightSameTarget: pluck(
      `SELECT 1 FROM outbox WHERE connector_id = ? AND state = 'in_flight' AND record_id = ? AND op = ? AND channel = ? AND purpose = ?
         AND json_extract(change, ${outboxBodyPath('target')}) IS ? AND key <> ? LIMIT 1`,
    ),
    duePending: pluck(`SELECT seq FROM outbox WHERE connector_id = ? AND state = 'pending' AND lane = ? AND not_before = 0 ORDER BY seq LIMIT ?`),
    dueRetry: pluck(`SELECT seq FROM outbox WHERE connector_id = ? AND state = 'retry' AND lane = ? AND not_before <= ? ORDER BY seq LIMIT ?`),
    claim: p(
      `UPDATE outbox SET state = 'in_flight', attempts = attempts + 1, updated_at = ? WHERE seq IN (SELECT value FROM json_each(?))
       RETURNING seq, ${OUTBOX_COLUMNS}, lane, attempts, not_before, last_error, enqueued_at`,
    ).raw(true),
    markDone: pluck(
      `UPDATE outbox SET state = 'done', updated_at = ? WHERE seq IN (SELECT value FROM json_each(?)) AND state IN (${toDone})
       RETURNING CASE WHEN op = 'erase' THEN seq END`,
    ),
    outboxChangeOf: p(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE seq = ?`).raw(true),
    // OR REPLACE: the same erasure pushed twice (planned again after its row was redacted) leaves one redacted row.
    redactOutbox: p('UPDATE OR REPLACE outbox SET subject = ?, record_id = ?, change = ? WHERE seq = ?'),
    markRetry: p(`UPDATE outbox SET state = 'retry', not_before = ?, last_error = ?, updated_at = ? WHERE seq = ? AND state IN (${toRetry})`),
    markDead: p(
      `UPDATE outbox SET state = 'dead', last_error = ?, updated_at = ? WHERE seq = ? AND state IN (${toDead}) RETURNING ${OUTBOX_COLUMNS}, attempts`,
    ).raw(true),
    insertDeadLetter: p('INSERT INTO dead_letters (key, connector_id, subject, change, reason, attempts, dead_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    requeue: pluck(`UPDATE outbox SET state = 'pending', not_before = 0, updated_at = ? WHERE connector_id = ? AND state = 'in_flight' RETURNING seq`),
    outboxConnectors: pluck(
      `WITH RECURSIVE c(id) AS (
         SELECT (SELECT min(connector_id) FROM outbox)
         UNION ALL SELECT (SELECT min(connector_id) FROM outbox WHERE connector_id > c.id) FROM c WHERE c.id IS NOT NULL
       ) SELECT id FROM c WHERE id IS NOT NULL`,
    ),
    depthOf: pluck(`SELECT count(*) FROM outbox WHERE connector_id = ? AND state IN (${active})`),
    nextDue: pluck(`SELECT min(not_before) FROM outbox WHERE connector_id = ? AND state = 'retry'`),
    deadLetters: p('SELECT id, change, reason, attempts, dead_at FROM dead_letters WHERE replayed_at IS NULL ORDER BY id LIMIT ?'),
    markReplayed: p('UPDATE dead_letters SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL RETURNING subject, key').raw(true),
    replay: pluck(`UPDATE outbox SET state = 'pending', attempts = 0, not_before = 0, last_error = NULL, updated_at = ? WHERE subject = ? AND key = ? AND state = 'dead' RETURNING seq`),
    // Rows are queued in the order of their seq (a re-armed row takes a new one): a row of the same
    // target with a higher seq, in any state but superseded, carries a newer decision. Found through
    // the subject (indexed) rather than the target index, which holds only pending and retry rows.
    newerOfTarget: pluck(
      `SELECT 1 FROM outbox AS o JOIN outbox AS n ON n.subject = o.subject AND n.connector_id = o.connector_id AND n.record_id = o.record_id
         AND n.op = o.op AND n.channel = o.channel AND n.purpose = o.purpose AND n.seq > o.seq AND n.state <> 'superseded'
       WHERE o.seq = ? LIMIT 1`,
    ),
    dropSuperseded: p(`DELETE FROM outbox WHERE subject = ? AND key = ? AND state = 'superseded'`),
    supersedeOne: p(`UPDATE outbox SET state = 'superseded', updated_at = ? WHERE seq = ? AND state IN (${toSuperseded})`),

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

    ledgerSnapshot: p(
      `INSERT INTO temp.ledger_order (gen, pos, subject, id)
       SELECT ?, row_number() OVER (ORDER BY json_extract(body, ${bodyPath('observedAt')}), seq), subject, id FROM observations`,
    ),
    ledgerPage: p(
      `SELECT o.id, o.subject, o.echo, o.body FROM temp.ledger_order AS t JOIN observations AS o ON o.subject = t.subject AND o.id = t.id
       WHERE t.gen = ? AND t.pos > ? AND t.pos <= ? ORDER BY t.pos`,
    ).raw(true),
    ledgerDrop: p('DELETE FROM temp.ledger_order WHERE gen = ?'),
    erasuresAfter: p('SELECT id, subject_hash AS subjectHash, source, erased_at AS erasedAt FROM erasure_audit WHERE id > ? ORDER BY id LIMIT ?'),

    countSubjects: pluck('SELECT count(*) FROM subjects'),
    countRecords: pluck('SELECT count(*) FROM records'),
    countObservations: pluck('SELECT count(*) FROM observations'),
    countDirty: pluck('SELECT count(*) FROM subjects WHERE dirty > 0'),
    dirtyAt: pluck('SELECT subject FROM subjects WHERE dirty > 0 ORDER BY subject LIMIT 1 OFFSET ?'),
    outboxByState: p('SELECT state, count(*) AS n FROM outbox GROUP BY state'),
    oldestPendingSeq: pluck(`SELECT min(seq) FROM outbox WHERE connector_id = ? AND state = 'pending' AND lane = ? AND not_before = 0`),
    enqueuedAtOf: pluck('SELECT enqueued_at FROM outbox WHERE seq = ?'),
    countDeadLetters: pluck('SELECT count(*) FROM dead_letters WHERE replayed_at IS NULL'),
    countTombstones: pluck('SELECT count(*) FROM tombstones'),
  };
}
