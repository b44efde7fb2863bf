import type { Observation, RecordSnapshot } from '../../model/index.js';
import { StoreError } from '../errors.js';

/*
 * The SQLite store's row forms of what a pull brings: pure (no database), so that a pull worker
 * thread can encode its pages (encodeSqlitePullPage) and the main thread only writes them.
 */

/**
 * An observation is stored as its key columns (subject, id), the store's own (seq, echo) and a
 * body: a JSON array of the statement (OBS_BODY order), written and read in one piece (binding or
 * reading sixteen columns cost three times as much). A record id equal to the subject (a list
 * keyed by address: CSV files, SendGrid) is written as 0, which no record id is (they are
 * strings): at 1M people (bench/reconcile) the text of a row went from 235 to 200 bytes on average,
 * written to the pull log, sorted by absorb and read by every reconcile. Older bodies hold the id.
 */
export const OBS_BODY = ['source', 'recordId', 'kind', 'channel', 'purpose', 'state', 'strength', 'statedAt', 'how', 'reference', 'evidence', 'reason', 'observedAt'] as const;
/** json_extract path of a body field, for SQL. */
export const bodyPath = (field: (typeof OBS_BODY)[number]): string => `'$[${OBS_BODY.indexOf(field)}]'`;

export type ObservationBody = [string, string | null | typeof RECORD_ID_IS_SUBJECT, Observation['kind'], Observation['channel'], string, Observation['state'], Observation['strength'], string | null, Observation['how'], string | null, string | null, Observation['reason'], string];

/** The body's record id when it equals the subject (see OBS_BODY). */
export const RECORD_ID_IS_SUBJECT = 0;

/** A field an observation cannot lack (the NOT NULL columns the body replaced) is missing. */
function missingField(o: Observation): string | null {
  // `== null`: null or undefined, field by field (a loop over names would be a megamorphic lookup per row).
  if (o.subject == null) return 'subject';
  if (o.id == null) return 'id';
  if (o.source == null) return 'source';
  if (o.kind == null) return 'kind';
  if (o.channel == null) return 'channel';
  if (o.purpose == null) return 'purpose';
  if (o.state == null) return 'state';
  if (o.strength == null) return 'strength';
  if (o.how == null) return 'how';
  if (o.observedAt == null) return 'observedAt';
  return null;
}

export function observationBody(o: Observation): string {
  const missing = missingField(o);
  if (missing !== null) throw new StoreError('STORE_INVALID_OBSERVATION', `observation ${String(o.id)}: ${missing} is missing (NOT NULL)`);
  const recordId = o.recordId === o.subject ? RECORD_ID_IS_SUBJECT : (o.recordId ?? null);
  const b: ObservationBody = [o.source, recordId, o.kind, o.channel, o.purpose, o.state, o.strength, o.statedAt ?? null, o.how, o.reference ?? null, o.evidence ?? null, o.reason ?? null, o.observedAt];
  return JSON.stringify(b);
}

/**
 * The snapshot column: what the key columns do not hold. Rows written before schema 3 hold the
 * whole snapshot; its keys equal the columns, so both read back the same.
 */
export function snapshotJson(r: RecordSnapshot): string {
  return JSON.stringify({ consent: r.consent, suppressed: r.suppressed, meta: r.meta });
}

/**
 * Can this observation be an echo of our own push (policy rule 10)? Only consent observations
 * with a record id, stated by the connector that ingests them; suppressions and erasures are
 * sticky and never flagged. Those get the log's rec_mark (see SqliteStore.logObservation).
 */
export function mayEcho(kind: Observation['kind'], recordId: string | null, source: string, connectorId: string | null): boolean {
  return kind === 'consent' && recordId !== null && source === connectorId;
}

/** An observation as obs_log takes it: [subject, id, source, recordId, kind, body]. */
export type ObsLogRow = [string, string, string, string | null, Observation['kind'], string];
/** A record snapshot as rec_log takes it: [subject, connectorId, recordId, snapshot]. */
export type RecLogRow = [string, string, string, string];

export interface SqlitePullPage {
  encoding: 'sqlite';
  observations: ObsLogRow[];
  records: RecLogRow[];
}

/** A pull page in rec_log / obs_log form (checked as the store would check it). */
export function encodeSqlitePullPage(page: { observations: readonly Observation[]; records: readonly RecordSnapshot[] }): SqlitePullPage {
  return {
    encoding: 'sqlite',
    observations: page.observations.map((o) => [o.subject, o.id, o.source, o.recordId ?? null, o.kind, observationBody(o)]),
    records: page.records.map((r) => [r.subject, r.connectorId, r.recordId, snapshotJson(r)]),
  };
}

/** The snapshot of a rec_log row back (a tombstoned record reported to the caller). */
export function recordOfRow(row: RecLogRow): RecordSnapshot {
  const body = JSON.parse(row[3]) as Pick<RecordSnapshot, 'consent' | 'suppressed' | 'meta'>;
  return { subject: row[0], connectorId: row[1], recordId: row[2], consent: body.consent, suppressed: body.suppressed, meta: body.meta };
}
