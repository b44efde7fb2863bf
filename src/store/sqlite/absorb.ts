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
 */

/** Log rows absorbed per transaction: large, so that a full pull is absorbed in one sorted pass. */
export const ABSORB_CHUNK = 4_000_000;

/** Temp tables used by absorb; created once per connection, before statements that use them. */
export function createAbsorbTempTables(db: Database.Database): void {
  db.exec(`
CREATE TEMP TABLE IF NOT EXISTS echo_keys (connector_id TEXT NOT NULL, record_id TEXT NOT NULL, PRIMARY KEY (connector_id, record_id)) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS echo_of (seq INTEGER PRIMARY KEY, prev INTEGER NOT NULL);
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
    maxMark: p('SELECT max(rec_mark) FROM obs_log WHERE seq <= ?').pluck(),
    absorbDirty: p(
      `INSERT INTO subjects (subject, dirty)
       SELECT subject, 1 FROM (SELECT subject FROM obs_log WHERE seq <= ? UNION SELECT subject FROM rec_log WHERE seq <= ?) WHERE true ORDER BY subject
       ON CONFLICT (subject) DO UPDATE SET dirty = dirty + 1`,
    ),
    clearEchoKeys: p('DELETE FROM temp.echo_keys'),
    clearEchoOf: p('DELETE FROM temp.echo_of'),
    fillEchoKeys: p('INSERT OR IGNORE INTO temp.echo_keys SELECT source, record_id FROM obs_log WHERE seq <= ? AND rec_mark IS NOT NULL ORDER BY 1, 2'),
    fillEchoOf: p(
      `INSERT INTO temp.echo_of (seq, prev)
       SELECT seq, prev FROM (
         SELECT kind, seq, max(CASE WHEN kind = 0 THEN seq END) OVER (PARTITION BY c, r ORDER BY pos, kind ROWS UNBOUNDED PRECEDING) AS prev
         FROM (
           SELECT p.connector_id AS c, p.record_id AS r, p.seq AS pos, 0 AS kind, p.seq AS seq FROM rec_log AS p
             WHERE p.seq <= ? AND EXISTS (SELECT 1 FROM temp.echo_keys AS k WHERE k.connector_id = p.connector_id AND k.record_id = p.record_id)
           UNION ALL
           SELECT l.source, l.record_id, l.rec_mark, 1, l.seq FROM obs_log AS l WHERE l.seq <= ? AND l.rec_mark IS NOT NULL
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
    // built once afterwards from sorted keys rather than grown at random.
    absorbRecInto: p(`INSERT INTO records (subject, connector_id, record_id, snapshot, last_seen_run) ${LATEST_SNAPSHOTS}`),
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
  s.absorbDirty.run(obsTo, recTo);
  if (obsFrom !== null) {
    s.clearEchoKeys.run();
    s.clearEchoOf.run();
    const maxMark = s.maxMark.get(obsTo) as number | null;
    if (maxMark !== null && recFrom !== null && maxMark >= recFrom) {
      s.fillEchoKeys.run(obsTo);
      s.fillEchoOf.run(maxMark, obsTo);
    }
    // Before this chunk's snapshots move: each observation is flagged against the old ones. The
    // same statement logged twice (a pull re-run after a crash) keeps its first logging (seq order).
    s.absorbObs.run(obsTo);
    if ((s.maxObsLog.get() as number) <= obsTo) s.truncateObsLog.run();
    else s.clearObsLog.run(obsTo);
    crashPoint('observations');
  }
  if (recFrom !== null) {
    if (recTo - recFrom + 1 >= bulkRecords && s.anyRecord.get() === undefined) {
      db.exec('DROP INDEX records_id');
      s.absorbRecInto.run(recTo);
      db.exec('CREATE UNIQUE INDEX records_id ON records(connector_id, record_id)');
    } else {
      s.absorbRec.run(recTo);
    }
    if ((s.maxRecLog.get() as number) <= recTo) s.truncateRecLog.run();
    else s.clearRecLog.run(recTo);
    crashPoint('records');
  }
  return true;
}
