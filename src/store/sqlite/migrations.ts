import type Database from 'better-sqlite3';
import { StoreError } from '../errors.js';

export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/**
 * Versioned schema. Append only: never edit a released migration, add the next version.
 * Layout notes (performance of the reconcile hot path, DESIGN.md section 5):
 * - pulls and webhooks only append to obs_log / rec_log (sequential writes: a page of 5000 rows
 *   dirties a few dozen pages instead of one page per row per subject-keyed b-tree); the store
 *   absorbs the logs into the subject-clustered tables in large sorted batches before any read
 *   that needs them (see SqliteStore.absorb);
 * - observations and records are clustered by subject (WITHOUT ROWID): loading a subject is one
 *   range read; the content id makes (subject, id) unique exactly as id alone;
 * - subjects.dirty is a per-subject version (0 = clean) so that a reconcile only clears the flag
 *   it actually read; a partial index keeps the dirty set cheap to page through;
 * - the outbox keeps its rowid as the enqueue order.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'initial schema',
    sql: `
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- Staging logs (append-only, emptied by absorb). obs_log.seq becomes observations.seq: never reused.
CREATE TABLE obs_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  subject TEXT NOT NULL,
  id TEXT NOT NULL,
  source TEXT NOT NULL,
  record_id TEXT,
  kind TEXT NOT NULL,
  channel TEXT NOT NULL,
  purpose TEXT NOT NULL,
  state TEXT NOT NULL,
  strength TEXT NOT NULL,
  stated_at TEXT,
  how TEXT NOT NULL,
  reference TEXT,
  evidence TEXT,
  reason TEXT,
  observed_at TEXT NOT NULL
);
-- run: the pull run that saw the record (NULL for webhook / pushed snapshots: keep last_seen_run).
CREATE TABLE rec_log (
  seq INTEGER PRIMARY KEY,
  subject TEXT NOT NULL,
  connector_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  snapshot TEXT NOT NULL,
  run INTEGER
);

CREATE TABLE subjects (
  subject TEXT PRIMARY KEY,
  dirty INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX subjects_dirty ON subjects(subject) WHERE dirty > 0;

-- Clustered by subject (the reconcile hot path reads a subject's records in one range); the
-- unique (connector_id, record_id) index is the upsert target and follows the pull order.
CREATE TABLE records (
  subject TEXT NOT NULL,
  connector_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  snapshot TEXT NOT NULL,
  last_seen_run INTEGER,
  PRIMARY KEY (subject, connector_id, record_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX records_id ON records(connector_id, record_id);

-- A record that moves to another subject (email changed in the CRM) changes the old subject too.
CREATE TRIGGER records_subject_moved AFTER UPDATE OF subject ON records
WHEN old.subject <> new.subject
BEGIN
  UPDATE subjects SET dirty = dirty + 1 WHERE subject = old.subject;
END;

CREATE TABLE observations (
  subject TEXT NOT NULL,
  id TEXT NOT NULL,
  source TEXT NOT NULL,
  record_id TEXT,
  kind TEXT NOT NULL,
  channel TEXT NOT NULL,
  purpose TEXT NOT NULL,
  state TEXT NOT NULL,
  strength TEXT NOT NULL,
  stated_at TEXT,
  how TEXT NOT NULL,
  reference TEXT,
  evidence TEXT,
  reason TEXT,
  observed_at TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (subject, id)
) WITHOUT ROWID;
-- The ledger order. seq (insertion order, from meta 'observation_seq') keeps this index append-mostly.
CREATE INDEX observations_ledger ON observations(observed_at, seq);

CREATE TABLE decisions (
  subject TEXT PRIMARY KEY,
  decision TEXT NOT NULL,
  decided_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  connector_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  op TEXT NOT NULL,
  channel TEXT NOT NULL,
  purpose TEXT NOT NULL,
  lane TEXT NOT NULL CHECK (lane IN ('high', 'normal')),
  state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'retry', 'done', 'dead', 'superseded')),
  attempts INTEGER NOT NULL DEFAULT 0,
  not_before INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  change TEXT NOT NULL,
  enqueued_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
-- Claiming: 'high' sorts before 'normal'; pending rows have not_before = 0, so within
-- (connector, pending, lane) the index yields enqueue (rowid) order.
CREATE INDEX outbox_claim ON outbox(connector_id, state, lane, not_before);
CREATE INDEX outbox_target ON outbox(connector_id, record_id, op, channel, purpose) WHERE state IN ('pending', 'retry');
CREATE INDEX outbox_subject ON outbox(subject);

CREATE TABLE dead_letters (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL,
  connector_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  change TEXT NOT NULL,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  dead_at TEXT NOT NULL,
  replayed_at TEXT
);
CREATE INDEX dead_letters_open ON dead_letters(id) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_subject ON dead_letters(subject);

CREATE TABLE cursors (
  connector_id TEXT PRIMARY KEY,
  cursor TEXT,
  updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL,
  connector_id TEXT,
  status TEXT NOT NULL,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  stats TEXT NOT NULL DEFAULT '{}',
  error TEXT
);
CREATE INDEX runs_kind ON runs(kind, connector_id);
CREATE INDEX runs_running ON runs(id) WHERE status = 'running';

CREATE TABLE webhook_events (
  connector_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  received_at TEXT NOT NULL,
  payload TEXT,
  PRIMARY KEY (connector_id, event_id)
);
-- Which subjects an event spoke about, so that erasure can redact its payload.
CREATE TABLE webhook_event_subjects (
  subject TEXT NOT NULL,
  connector_id TEXT NOT NULL,
  event_id TEXT NOT NULL,
  PRIMARY KEY (subject, connector_id, event_id)
) WITHOUT ROWID;

-- bucket: a cheap salted 32-bit fingerprint, so that ingestion computes the HMAC only on a bucket hit.
CREATE TABLE tombstones (
  subject_hash TEXT PRIMARY KEY,
  bucket INTEGER NOT NULL,
  created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE erasure_audit (
  id INTEGER PRIMARY KEY,
  subject_hash TEXT NOT NULL,
  source TEXT NOT NULL,
  erased_at TEXT NOT NULL
);
`,
  },
  {
    version: 2,
    description: 'echo flag on observations (policy rule 10): obs_log.rec_mark, rec_log seq never reused',
    // observations.echo: 1 = the observation repeated what its record already said (see SqliteStore.absorb).
    // obs_log.rec_mark: the highest rec_log seq ever assigned when the observation was logged, so that
    //   absorb knows which snapshots came before it; NULL = never an echo (statements made through
    //   consentd, rows logged before this migration).
    // rec_log is rebuilt with AUTOINCREMENT so that a seq is never reused once the log is emptied
    //   (rec_mark compares seqs), and indexed by record for the "snapshot before" lookup.
    sql: `
ALTER TABLE observations ADD COLUMN echo INTEGER NOT NULL DEFAULT 0;
ALTER TABLE obs_log ADD COLUMN rec_mark INTEGER;

CREATE TABLE rec_log_v2 (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  subject TEXT NOT NULL,
  connector_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  snapshot TEXT NOT NULL,
  run INTEGER
);
INSERT INTO rec_log_v2 (seq, subject, connector_id, record_id, snapshot, run) SELECT seq, subject, connector_id, record_id, snapshot, run FROM rec_log;
DROP TABLE rec_log;
ALTER TABLE rec_log_v2 RENAME TO rec_log;
CREATE INDEX rec_log_record ON rec_log(connector_id, record_id, seq);
`,
  },
  {
    version: 3,
    description: 'bulk layout: no index written at random by a pull (rec_log_record, observations_ledger); rec_log_run; observations as JSON bodies',
    // Measured at 1M people (2.7M observations, 2.4M snapshots): an index whose keys arrive in random
    // order, written by every pull page's commit, rewrites most of its pages at each commit.
    // - rec_log_record (connector, record, seq) served only the echo flags of absorb: absorb now
    //   builds that order itself, once per absorbed chunk (SqliteStore.absorb, temp.echo_prev);
    // - observations_ledger (observed_at, seq) served only the audit export, which now sorts once
    //   per export (iterateObservations);
    // - rec_log_run (connector, run) grows at one end during a pull (one run at a time per connector):
    //   dropUnseenRecords tells cheaply that nothing of a connector can be dropped (first pull).
    // - observations and obs_log keep a statement as one JSON array (body; order in SqliteStore's
    //   OBS_BODY): binding or reading sixteen text columns per row cost three times as much. Both are
    //   rebuilt in place; obs_log keeps its AUTOINCREMENT position (its seqs become observations.seq
    //   and are never reused).
    sql: `
DROP INDEX rec_log_record;
DROP INDEX observations_ledger;
CREATE INDEX rec_log_run ON rec_log(connector_id, run);

CREATE TABLE observations_v3 (
  subject TEXT NOT NULL,
  id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  echo INTEGER NOT NULL DEFAULT 0,
  body TEXT NOT NULL,
  PRIMARY KEY (subject, id)
) WITHOUT ROWID;
INSERT INTO observations_v3 (subject, id, seq, echo, body)
  SELECT subject, id, seq, echo, json_array(source, record_id, kind, channel, purpose, state, strength, stated_at, how, reference, evidence, reason, observed_at)
  FROM observations ORDER BY subject, id;
DROP TABLE observations;
ALTER TABLE observations_v3 RENAME TO observations;

CREATE TABLE obs_log_v3 (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  subject TEXT NOT NULL,
  id TEXT NOT NULL,
  source TEXT NOT NULL,
  record_id TEXT,
  rec_mark INTEGER,
  body TEXT NOT NULL
);
INSERT INTO obs_log_v3 (seq, subject, id, source, record_id, rec_mark, body)
  SELECT seq, subject, id, source, record_id, rec_mark, json_array(source, record_id, kind, channel, purpose, state, strength, stated_at, how, reference, evidence, reason, observed_at)
  FROM obs_log ORDER BY seq;
UPDATE sqlite_sequence SET seq = max(seq, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'obs_log'), 0)) WHERE name = 'obs_log_v3';
INSERT INTO sqlite_sequence (name, seq)
  SELECT 'obs_log_v3', seq FROM sqlite_sequence WHERE name = 'obs_log' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'obs_log_v3');
DROP TABLE obs_log;
ALTER TABLE obs_log_v3 RENAME TO obs_log;
`,
  },
  {
    version: 4,
    description: 'outbox.change holds only what its key columns do not: [target, rule, decidedBy, meta]',
    // See outbox-rows.ts. Every row is rewritten in place (the key columns already hold the rest);
    // dead_letters keep the whole change. json(): meta stays a JSON object, not a quoted string.
    sql: `
UPDATE outbox SET change = json_array(
  json_extract(change, '$.target'), json_extract(change, '$.rule'), json_extract(change, '$.decidedBy'), json(coalesce(json_extract(change, '$.meta'), '{}'))
);
`,
  },
  {
    version: 5,
    description: 'outbox rows unique by (subject, key), settled by seq: no index on the key alone',
    // The key is a content hash: its own unique index took every insert to a random page, and a
    // bulk reconcile's commit rewrote most of that index (1M people, 693k changes: reconcile 25.7 ->
    // 24.7 s, the main thread's enqueue about 4 s less). (subject, key) grows where a reconcile
    // writes (subject order) and replaces the index on subject alone; claimed rows are settled by
    // seq. The table is rebuilt (a column's UNIQUE cannot be dropped), keeping every seq.
    sql: `
CREATE TABLE outbox_v5 (
  seq INTEGER PRIMARY KEY,
  key TEXT NOT NULL,
  connector_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  op TEXT NOT NULL,
  channel TEXT NOT NULL,
  purpose TEXT NOT NULL,
  lane TEXT NOT NULL CHECK (lane IN ('high', 'normal')),
  state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'retry', 'done', 'dead', 'superseded')),
  attempts INTEGER NOT NULL DEFAULT 0,
  not_before INTEGER NOT NULL DEFAULT 0,
  last_error TEXT,
  change TEXT NOT NULL,
  enqueued_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
INSERT INTO outbox_v5 SELECT seq, key, connector_id, record_id, subject, op, channel, purpose, lane, state, attempts, not_before, last_error, change, enqueued_at, updated_at FROM outbox ORDER BY seq;
DROP TABLE outbox;
ALTER TABLE outbox_v5 RENAME TO outbox;
CREATE INDEX outbox_claim ON outbox(connector_id, state, lane, not_before);
CREATE INDEX outbox_target ON outbox(connector_id, record_id, op, channel, purpose) WHERE state IN ('pending', 'retry');
CREATE UNIQUE INDEX outbox_subject_key ON outbox(subject, key);
`,
  },
  {
    version: 6,
    description: 'outbox batches: a bulk reconcile queues its changes many to a row (outbox-batches.ts)',
    // At 1M people (693k changes) claiming and completing one outbox row per change took about
    // 11 s of the apply's 27 s (each row's state moved twice through two indexes), and inserting
    // them 5-6 s of the reconcile's main thread. A batch row holds up to BATCH_ROW changes as one
    // JSON array (null where an erasure removed one) and is claimed, settled and emptied as a whole.
    sql: `
CREATE TABLE outbox_batches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  connector_id TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'done')),
  size INTEGER NOT NULL,
  settled INTEGER NOT NULL DEFAULT 0,
  ok INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  min_subject TEXT NOT NULL,
  max_subject TEXT NOT NULL,
  changes TEXT,
  enqueued_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE INDEX outbox_batches_claim ON outbox_batches(connector_id, state);
`,
  },
];

export const LATEST_SCHEMA_VERSION: number = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

function currentVersion(db: Database.Database): number {
  const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (exists === undefined) return 0;
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

function assertNotNewer(version: number, path: string): void {
  if (version > LATEST_SCHEMA_VERSION) {
    throw new StoreError(
      'STORE_SCHEMA_TOO_NEW',
      `database ${path} has schema version ${version}, newer than this consentd (${LATEST_SCHEMA_VERSION}); upgrade consentd or use a matching database`,
    );
  }
}

/** Check without writing (read-only opens): the schema must be exactly the code's. */
export function checkSchema(db: Database.Database, path: string, migrations: readonly Migration[] = MIGRATIONS): number {
  const version = currentVersion(db);
  assertNotNewer(version, path);
  const latest = migrations.reduce((max, m) => Math.max(max, m.version), 0);
  if (version < latest) {
    throw new StoreError('STORE_SCHEMA_OUTDATED', `database ${path} has schema version ${version}; open it read-write once to migrate to ${latest}`);
  }
  return version;
}

/**
 * Apply pending migrations in order, all in one IMMEDIATE transaction (a second process opening
 * the same file waits, then sees them applied). Idempotent. Returns the versions applied.
 */
export function migrate(db: Database.Database, path: string, migrations: readonly Migration[] = MIGRATIONS): number[] {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  const applied: number[] = [];
  const run = db.transaction(() => {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)');
    const version = currentVersion(db);
    const known = sorted.reduce((max, m) => Math.max(max, m.version), 0);
    if (version > known) {
      throw new StoreError('STORE_SCHEMA_TOO_NEW', `database ${path} has schema version ${version}, newer than this consentd (${known}); upgrade consentd or use a matching database`);
    }
    const record = db.prepare('INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)');
    for (const m of sorted) {
      if (m.version <= version) continue;
      try {
        db.exec(m.sql);
      } catch (err) {
        throw new StoreError('STORE_MIGRATION_FAILED', `migration ${m.version} (${m.description}) failed: ${(err as Error).message}`, { cause: err });
      }
      record.run(m.version, m.description, new Date().toISOString());
      applied.push(m.version);
    }
  });
  run.immediate();
  return applied;
}
