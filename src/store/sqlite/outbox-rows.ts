import type { Change } from '../../model/index.js';

/*
 * How an outbox row holds its change (migration 4): the key columns (key, connector_id,
 * record_id, subject, op, channel, purpose) hold those fields once, and `change` only the rest,
 * as a JSON array [target, rule, decidedBy, meta] (OUTBOX_BODY order). Every outbox row is
 * inserted and then rewritten by its claim and its completion: at 1M people (693k changes) the
 * whole change as JSON made rows of ~560 bytes (~360 in this form), and claiming and completing
 * them, measured in isolation, cost about a quarter more.
 */

export const OUTBOX_BODY = ['target', 'rule', 'decidedBy', 'meta'] as const;
/** json_extract path of a body field, for SQL. */
export const outboxBodyPath = (field: (typeof OUTBOX_BODY)[number]): string => `'$[${OUTBOX_BODY.indexOf(field)}]'`;

type OutboxBody = [Change['target'], Change['rule'], Change['decidedBy'], Change['meta']];

export function outboxBody(c: Change): string {
  const body: OutboxBody = [c.target, c.rule, c.decidedBy, c.meta];
  return JSON.stringify(body);
}

/** The key columns of an outbox row, in OUTBOX_COLUMNS order, then its `change` body. */
export const OUTBOX_COLUMNS = 'key, connector_id, record_id, subject, op, channel, purpose, change';

export type OutboxColumns = [string, string, string, string, Change['op'], Change['channel'], string, string];

/** The change of a row read as OUTBOX_COLUMNS (raw), from `at` on in that row. */
export function changeOfOutboxRow(row: readonly unknown[], at = 0): Change {
  const [key, connectorId, recordId, subject, op, channel, purpose, body] = row.slice(at, at + 8) as OutboxColumns;
  const [target, rule, decidedBy, meta] = JSON.parse(body) as OutboxBody;
  return { key, connectorId, recordId, subject, op, channel, purpose, target, rule, decidedBy, meta };
}
