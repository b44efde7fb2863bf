import type Database from 'better-sqlite3';

/*
 * Absorb: move the staging logs (obs_log, rec_log) into the subject-clustered tables. Pull pages
 * and webhooks only append to the logs (sequential writes); absorb moves large sorted batches, so
 * each page of the clustered tables is rewritten once per batch rather than once per pull page.
 *
 * Echo flags (policy rule 10): an eligible observation (rec_mark set) is compared with the latest
 * snapshot of its (source, record) logged at or before its mark, else with the absorbed one in
 * `records` (absorb never moves into `records` a snapshot logged after a waiting observation).
 * That "latest snapshot at or before the mark" is found for the whole batch at once: one sort of
 * the eligible observations with the snapshots of the same records (a window function), the
 * result kept in temp.echo_of (observation seq -> snapshot seq). No index on rec_log is needed
 * (a pull would rewrite it at random on every page).
 *
 * A bulk load into an empty `records` (a first full pull) sorts the snapshot log once
 * (absorbRecordsInBulk) and builds records_id afterwards from sorted keys; when `observations` was
 * empty too, the dirty subjects are read back from the filled tables in key order (no sort).
 */

/** Log rows absorbed per transaction: large, so that a full pull is absorbed in one sorted pass. */
export const ABSORB_CHUNK = 4_000_000;

/** Temp tables used by absorb; created once per connection, before statements that use them. */
export function createAbsorbTempTables(db: Database.Database): void {
  db.exec(`
CREATE TEMP TABLE IF NOT EXISTS echo_keys (connector_id TEXT NOT NULL, record_id TEXT NOT NULL, PRIMARY KEY (connector_id, record_id)) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS echo_of (seq INTEGER PRIMARY KEY, prev INTEGER NOT NULL);
CREATE TEMP TABLE IF NOT EXISTS echo_obs (seq INTEGER PRIMARY KEY, source TEXT, record_id TEXT, rec_mark INTEGER NOT NULL);
`);
}

/** In an obs_log body (see SqliteStore's OBS_BODY): channel 3, purpose 4, state 5. */
const SCOPE = `'$.consent."' || json_extract(l.body, '$[3]') || ':' || json_extract(l.body, '$[4]') || '"'`;

/** Is the obs_log row `l` an echo? (after temp.echo_of was filled for its batch; see above) */
const ECHO_OF_LOG_ROW = `CASE WHEN l.rec_mark IS NULL THEN 0 WHEN json_extract(l.body, '$[5]') = coalesce(
    (SELECT coalesce(json_extract(p.snapshot, ${SCOPE}), '') FROM temp.echo_of AS e JOIN rec_log AS p ON p.seq = e.prev WHERE e.seq = l.seq),
    (SELECT json_extract(r.snapshot, ${SCOPE}) FROM records AS r WHERE r.connector_id = l.source AND r.record_id = l.record_id)
  ) THEN 1 ELSE 0 END`;

/** Per record, the latest logged snapshot, with the latest pull run that saw it. */
const LATEST_SNAPSHOTS = `SELECT subject, connector_id, record_id, snapshot, run FROM (
    SELECT subject, connector_id, record_id, snapshot, max(run) OVER w AS run, row_number() OVER w AS n
    FROM rec_log WHERE seq <= ?
    WINDOW w AS (PARTITION BY connector_id, record_id ORDER BY seq DESC ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
  ) WHERE n = 1 ORDER BY subject, connector_id, record_id`;

export function prepareAbsorb(db: Database.Database) {
  const p = (sql: string) => db.prepare(sql);
  return {
    minObsLog: p('SELECT min(seq) FROM obs_log').pluck(),
    minRecLog: p('SELECT min(seq) FROM rec_log').pluck(),
    nextRecMark: p('SELECT rec_mark FROM obs_log WHERE seq > ? AND rec_mark IS NOT NULL ORDER BY seq LIMIT 1').pluck(),
    // The eligible observations of the chunk (rec_mark set; few in a first load), copied in one scan
    // of obs_log: the mark bound, the keys and the echo window read them from here rather than
    // scanning the whole log three times.
    clearEchoObs: p('DELETE FROM temp.echo_obs'),
    fillEchoObs: p('INSERT INTO temp.echo_obs (seq, source, record_id, rec_mark) SELECT seq, source, record_id, rec_mark FROM obs_log WHERE seq <= ? AND rec_mark IS NOT NULL'),
    maxMark: p('SELECT max(rec_mark) FROM temp.echo_obs').pluck(),
    absorbDirty: p(
      `INSERT INTO subjects (subject, dirty)
       SELECT subject, 1 FROM (SELECT subject FROM obs_log WHERE seq <= ? UNION SELECT subject FROM rec_log WHERE seq <= ?) WHERE true ORDER BY subject
       ON CONFLICT (subject) DO UPDATE SET dirty = dirty + 1`,
    ),
    // The same set after a bulk load into empty clustered tables (see absorbChunk): `observations`
    // then holds a row for every subject of the observation chunk (a duplicate ignored on the way
    // has the subject of the row kept) and `records` one for every subject of the snapshot chunk.
    // Both are read in key order and merged: no sort (the log form sorts 5M subjects twice).
    absorbDirtyFromTables: p(
      `INSERT INTO subjects (subject, dirty)
       SELECT subject, 1 FROM (SELECT subject FROM observations UNION SELECT subject FROM records) WHERE true ORDER BY subject
       ON CONFLICT (subject) DO UPDATE SET dirty = dirty + 1`,
    ),
    // After the per-record fallback, `records` may lack the earlier subject of a moved record: take
    // the snapshots' subjects from the log (still there), the observations' from the table.
    absorbDirtyFromObservations: p(
      `INSERT INTO subjects (subject, dirty)
       SELECT subject, 1 FROM (SELECT subject FROM observations UNION SELECT subject FROM rec_log WHERE seq <= ?) WHERE true ORDER BY subject
       ON CONFLICT (subject) DO UPDATE SET dirty = dirty + 1`,
    ),
    anyObservation: p('SELECT 1 FROM observations LIMIT 1').pluck(),
    clearEchoKeys: p('DELETE FROM temp.echo_keys'),
    clearEchoOf: p('DELETE FROM temp.echo_of'),
    fillEchoKeys: p('INSERT OR IGNORE INTO temp.echo_keys SELECT source, record_id FROM temp.echo_obs ORDER BY 1, 2'),
    fillEchoOf: p(
      `INSERT INTO temp.echo_of (seq, prev)
       SELECT seq, prev FROM (
         SELECT kind, seq, max(CASE WHEN kind = 0 THEN seq END) OVER (PARTITION BY c, r ORDER BY pos, kind ROWS UNBOUNDED PRECEDING) AS prev
         FROM (
           SELECT p.connector_id AS c, p.record_id AS r, p.seq AS pos, 0 AS kind, p.seq AS seq FROM rec_log AS p
             WHERE p.seq <= ? AND EXISTS (SELECT 1 FROM temp.echo_keys AS k WHERE k.connector_id = p.connector_id AND k.record_id = p.record_id)
           UNION ALL
           SELECT l.source, l.record_id, l.rec_mark, 1, l.seq FROM temp.echo_obs AS l
         )
       ) WHERE kind = 1 AND prev IS NOT NULL`,
    ),
    absorbObs: p(
      `INSERT OR IGNORE INTO observations (subject, id, seq, echo, body)
       SELECT l.subject, l.id, l.seq, ${ECHO_OF_LOG_ROW}, l.body
       FROM obs_log AS l WHERE l.seq <= ? ORDER BY l.subject, l.id, l.seq`,
    ),
    anyRecord: p('SELECT 1 FROM records LIMIT 1').pluck(),
    absorbRec: p(
      `INSERT INTO records (subject, connector_id, record_id, snapshot, last_seen_run)
       ${LATEST_SNAPSHOTS}
       ON CONFLICT (connector_id, record_id) DO UPDATE SET
         subject = excluded.subject, snapshot = excluded.snapshot, last_seen_run = coalesce(excluded.last_seen_run, records.last_seen_run)`,
    ),
    // Into an empty `records`: no conflict is possible (one row per record), and the unique index is
    // built once afterwards from sorted keys rather than grown at random. The fallback of
    // absorbRecordsInBulk (a moved record); absorbRecSorted does the same in one sort otherwise.
    absorbRecInto: p(`INSERT INTO records (subject, connector_id, record_id, snapshot, last_seen_run) ${LATEST_SNAPSHOTS}`),
    // The same in one sort (by key, the latest first), records_id dropped: the first row of each
    // (subject, connector, record) lands, the older ones of that key only raise last_seen_run to
    // the latest pull run (a NULL run, pushed or webhook snapshot, keeps the other: max(run) of
    // LATEST_SNAPSHOTS). Exact as long as no record was logged under two subjects (moved): then
    // both would land, and building records_id afterwards fails; see absorbRecordsInBulk.
    absorbRecSorted: p(
      `INSERT INTO records (subject, connector_id, record_id, snapshot, last_seen_run)
       SELECT subject, connector_id, record_id, snapshot, run FROM rec_log WHERE seq <= ? ORDER BY subject, connector_id, record_id, seq DESC
       ON CONFLICT (subject, connector_id, record_id) DO UPDATE SET last_seen_run = CASE
         WHEN excluded.last_seen_run IS NULL THEN records.last_seen_run
         WHEN records.last_seen_run IS NULL THEN excluded.last_seen_run
         ELSE max(records.last_seen_run, excluded.last_seen_run) END`,
    ),
    clearRecords: p('DELETE FROM records'),
    clearObsLog: p('DELETE FROM obs_log WHERE seq <= ?'),
    clearRecLog: p('DELETE FROM rec_log WHERE seq <= ?'),
    // The whole log absorbed: a DELETE without WHERE frees its pages at once (AUTOINCREMENT kept).
    maxObsLog: p('SELECT max(seq) FROM obs_log').pluck(),
    maxRecLog: p('SELECT max(seq) FROM rec_log').pluck(),
    truncateObsLog: p('DELETE FROM obs_log'),
    truncateRecLog: p('DELETE FROM rec_log'),
  };
}

export type AbsorbStatements = ReturnType<typeof prepareAbsorb>;

/** Fault tests only: die (SIGKILL) inside the absorb transaction, after 'observations' or 'records'. */
const CRASH_AFTER = process.env.CONSENTD_TEST_CRASH_IN_ABSORB;
const crashPoint = (step: string): void => {
  if (CRASH_AFTER === step) process.kill(process.pid, 'SIGKILL');
};

/** From this many snapshots on, an empty `records` is filled first and its unique index built after. */
export const BULK_RECORDS = 10_000;

const RECORDS_ID = 'CREATE UNIQUE INDEX records_id ON records(connector_id, record_id)';

/**
 * Fill an empty `records` from the snapshot log up to `recTo`, then build its unique index from
 * sorted keys. Returns true when it took the one-sort path (one row per (subject, record) of the
 * log: absorbDirtyFromTables may read the subjects of the snapshots from `records`).
 * A record logged under two subjects (its email changed between two snapshots of the chunk: rare
 * in a first load) makes the index fail; then `records` (empty before) is emptied again and filled
 * per record with the window (two sorts), which lets the latest subject win.
 */
export function absorbRecordsInBulk(db: Database.Database, s: AbsorbStatements, recTo: number): boolean {
  db.exec('DROP INDEX records_id');
  s.absorbRecSorted.run(recTo);
  try {
    db.exec(RECORDS_ID);
    return true;
  } catch (err) {
    // Only the uniqueness of (connector_id, record_id) is expected to fail; the failed statement
    // alone is rolled back (the transaction goes on).
    if ((err as { code?: unknown }).code !== 'SQLITE_CONSTRAINT_UNIQUE') throw err;
  }
  s.clearRecords.run();
  s.absorbRecInto.run(recTo);
  db.exec(RECORDS_ID);
  return false;
}

/**
 * One absorb transaction's work (the caller holds the write transaction): up to `chunk` rows of
 * each log. Returns false when both logs were empty.
 */
export function absorbChunk(db: Database.Database, s: AbsorbStatements, chunk: number, bulkRecords = BULK_RECORDS): boolean {
  const obsFrom = s.minObsLog.get() as number | null;
  const recFrom = s.minRecLog.get() as number | null;
  if (obsFrom === null && recFrom === null) return false;
  const obsTo = obsFrom === null ? 0 : obsFrom + chunk - 1;
  let recTo = recFrom === null ? 0 : recFrom + chunk - 1;
  if (recFrom !== null && obsFrom !== null) {
    // A snapshot logged after an observation that waits for a later chunk must not reach `records`
    // before it. Marks grow with seq, so the first waiting one bounds them all.
    const next = s.nextRecMark.get(obsTo) as number | undefined;
    if (next !== undefined && next < recTo) recTo = next;
  }
  const bulk = recFrom !== null && recTo - recFrom + 1 >= bulkRecords && s.anyRecord.get() === undefined;
  // A bulk load into empty clustered tables (a first full pull): the dirty subjects are read from
  // the tables once filled (absorbDirtyFromTables), in key order, instead of sorted from the logs.
  const dirtyAfter = bulk && s.anyObservation.get() === undefined;
  if (!dirtyAfter) s.absorbDirty.run(obsTo, recTo);
  if (obsFrom !== null) {
    s.clearEchoKeys.run();
    s.clearEchoOf.run();
    s.clearEchoObs.run();
    s.fillEchoObs.run(obsTo);
    const maxMark = s.maxMark.get() as number | null;
    if (maxMark !== null && recFrom !== null && maxMark >= recFrom) {
      s.fillEchoKeys.run();
      s.fillEchoOf.run(maxMark);
    }
    // Before this chunk's snapshots move: each observation is flagged against the old ones. The
    // same statement logged twice (a pull re-run after a crash) keeps its first logging (seq order).
    s.absorbObs.run(obsTo);
    if ((s.maxObsLog.get() as number) <= obsTo) s.truncateObsLog.run();
    else s.clearObsLog.run(obsTo);
    crashPoint('observations');
  }
  if (recFrom !== null) {
    if (bulk) {
      const onePass = absorbRecordsInBulk(db, s, recTo);
      if (dirtyAfter && onePass) s.absorbDirtyFromTables.run();
      else if (dirtyAfter) s.absorbDirtyFromObservations.run(recTo);
    } else {
      s.absorbRec.run(recTo);
    }
    if ((s.maxRecLog.get() as number) <= recTo) s.truncateRecLog.run();
    else s.clearRecLog.run(recTo);
    crashPoint('records');
  }
  return true;
}
