import type { ConnectorContext, PullPage, PullReject } from '../../src/connectors/contract.js';
import type { How, ObservationInput, RecordSnapshot } from '../../src/model/types.js';
import type { SalesforceClient } from './client.js';
import { isoTime, mapPerson, type ConsentRow, type PersonRow, type PersonType, type PurposeMap } from './mapping.js';
import type { SalesforceSettings } from './settings.js';

/**
 * Pull: one SOQL query per object ordered by (SystemModstamp, Id), read batch by batch
 * (query + nextRecordsUrl, never everything in memory); each batch is one page. The cursor
 * keeps, per object, the (SystemModstamp, Id) of the last record handed out, and the next run
 * asks for `SystemModstamp > ts OR (SystemModstamp = ts AND Id > id)`: many records sharing one
 * timestamp across a page boundary are neither lost nor repeated.
 *
 * Individual and ContactPointTypeConsent changes do not touch their Contacts' SystemModstamp, so
 * an incremental run also follows those two objects (same cursor scheme) and re-reads the
 * Contacts / Leads linked to what changed. A full run records their current heads first.
 */

export interface Pos {
  ts: string;
  id: string;
}

export interface CursorState {
  v: 1;
  pos: Partial<Record<string, Pos | null>>;
}

export interface PullDeps {
  client: SalesforceClient;
  settings: SalesforceSettings;
  ctx: ConnectorContext;
  purposes: PurposeMap;
  privacy(): Promise<boolean>;
  now(): number;
}

const ID_RE = /^[0-9A-Za-z]{15,18}$/;
/** Ids per `IN (...)` list: keeps the GET URL well under Salesforce's 16 KB. */
export const IN_CHUNK = 300;

export function parseCursor(cursor: string | null, ctx: ConnectorContext): CursorState | null {
  if (cursor === null) return null;
  try {
    const c = JSON.parse(cursor) as CursorState;
    if (c && c.v === 1 && typeof c.pos === 'object' && c.pos !== null) return c;
  } catch {
    // fall through
  }
  ctx.logger.warn({ connector: ctx.id, cursor }, 'salesforce cursor not understood: running a full pull');
  return null;
}

const soqlTime = (iso: string): string => new Date(Date.parse(iso)).toISOString();

function quoteIds(ids: readonly string[]): string {
  return ids.map((id) => {
    if (!ID_RE.test(id)) throw new Error(`not a Salesforce id: ${JSON.stringify(id)}`);
    return `'${id}'`;
  }).join(',');
}

function since(pos: Pos | null | undefined): string | null {
  if (!pos) return null;
  const ts = soqlTime(pos.ts);
  return `(SystemModstamp > ${ts} OR (SystemModstamp = ${ts} AND Id > '${pos.id.replace(/[^0-9A-Za-z]/g, '')}'))`;
}

function where(conds: (string | null)[]): string {
  const c = conds.filter((x): x is string => x !== null);
  return c.length === 0 ? '' : ` WHERE ${c.join(' AND ')}`;
}

export function personFields(type: PersonType, privacy: boolean): string[] {
  const f = ['Id', 'Email', 'HasOptedOutOfEmail', 'HasOptedOutOfFax', 'DoNotCall', 'EmailBouncedReason', 'EmailBouncedDate', 'LastModifiedDate', 'SystemModstamp'];
  f.push(type === 'Contact' ? 'IsEmailBounced' : 'IsConverted');
  if (privacy) f.push('IndividualId', 'Individual.ShouldForget', 'Individual.HasOptedOutSolicit', 'Individual.LastModifiedDate');
  return f;
}

const CONSENT_FIELDS = [
  'Id',
  'PartyId',
  'ContactPointType',
  'PrivacyConsentStatus',
  'DataUsePurposeId',
  'DataUsePurpose.Name',
  'CaptureDate',
  'CaptureSource',
  'EffectiveFrom',
  'EffectiveTo',
  'DoubleConsentCaptureDate',
  'LastModifiedDate',
];

function leadFilter(type: PersonType, settings: SalesforceSettings): string | null {
  return type === 'Lead' && settings.convertedLeads === 'skip' ? 'IsConverted = false' : null;
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The consents of these Individuals (all contact point types; mapping picks what it understands). */
export async function consentsOf(deps: PullDeps, individualIds: readonly string[]): Promise<ConsentRow[]> {
  const ids = [...new Set(individualIds)];
  const out: ConsentRow[] = [];
  for (const chunk of chunks(ids, IN_CHUNK)) {
    out.push(...(await deps.client.all<ConsentRow>(`SELECT ${CONSENT_FIELDS.join(', ')} FROM ContactPointTypeConsent WHERE PartyId IN (${quoteIds(chunk)})`)));
  }
  return out;
}

export interface MappedRows {
  records: RecordSnapshot[];
  observations: ObservationInput[];
  rejects: PullReject[];
}

/** Maps person rows (fetching their consents when privacy features are on). */
export async function mapRows(deps: PullDeps, rows: readonly PersonRow[], privacy: boolean, how: How): Promise<MappedRows> {
  const indIds = privacy ? rows.map((r) => r.IndividualId).filter((x): x is string => typeof x === 'string' && x !== '') : [];
  const consents = indIds.length > 0 ? await consentsOf(deps, indIds) : [];
  const byParty = new Map<string, ConsentRow[]>();
  for (const c of consents) {
    const k = c.PartyId.slice(0, 15);
    const list = byParty.get(k);
    if (list) list.push(c);
    else byParty.set(k, [c]);
  }
  const out: MappedRows = { records: [], observations: [], rejects: [] };
  const opts = { connectorId: deps.ctx.id, faxChannel: deps.settings.faxChannel, privacy, purposes: deps.purposes, how, now: deps.now() };
  for (const row of rows) {
    if (row.IsDeleted === true) continue;
    const mine = row.IndividualId ? (byParty.get(row.IndividualId.slice(0, 15)) ?? []) : [];
    const m = mapPerson(row, mine, opts);
    if (m.reject) out.rejects.push(m.reject);
    if (m.snapshot) out.records.push(m.snapshot);
    out.observations.push(...m.observations);
  }
  return out;
}

/** Contacts / Leads linked to these Individuals. */
export async function personsOfIndividuals(deps: PullDeps, individualIds: readonly string[], privacy: boolean): Promise<PersonRow[]> {
  const out: PersonRow[] = [];
  const ids = [...new Set(individualIds)];
  for (const type of deps.settings.objects) {
    for (const chunk of chunks(ids, IN_CHUNK)) {
      const soql = `SELECT ${personFields(type, privacy).join(', ')} FROM ${type}${where([`IndividualId IN (${quoteIds(chunk)})`, leadFilter(type, deps.settings)])} ORDER BY Id`;
      out.push(...(await deps.client.all<PersonRow>(soql)));
    }
  }
  return out;
}

/** (SystemModstamp, Id) of the newest row of an object, or null when it has none. */
async function head(deps: PullDeps, object: string): Promise<Pos | null> {
  const rows = await deps.client.all<{ Id: string; SystemModstamp: string }>(`SELECT Id, SystemModstamp FROM ${object} ORDER BY SystemModstamp DESC, Id DESC LIMIT 1`);
  const r = rows[0];
  const ts = r ? isoTime(r.SystemModstamp) : null;
  return r && ts ? { ts, id: r.Id } : null;
}

function posOf(row: { Id: string; SystemModstamp?: string | null } | undefined): Pos | null {
  const ts = row ? isoTime(row.SystemModstamp) : null;
  return row && ts ? { ts, id: row.Id } : null;
}

export async function* pullPages(deps: PullDeps, cursor: string | null): AsyncGenerator<PullPage> {
  const privacy = await deps.privacy();
  const parsed = parseCursor(cursor, deps.ctx);
  const full = parsed === null;
  const state: CursorState = parsed ?? { v: 1, pos: {} };
  const batch = deps.settings.pageSize;
  if (privacy) {
    for (const object of ['Individual', 'ContactPointTypeConsent']) {
      if (full || state.pos[object] === undefined) state.pos[object] = await head(deps, object);
    }
  }
  // Records handed out by this incremental run (linked-record passes skip them).
  const emitted = full ? null : new Set<string>();
  let yielded: string | null = cursor;
  const page = (mapped: MappedRows): PullPage => {
    yielded = JSON.stringify(state);
    return { ...mapped, cursor: yielded };
  };

  for (const type of deps.settings.objects) {
    const soql = `SELECT ${personFields(type, privacy).join(', ')} FROM ${type}${where([leadFilter(type, deps.settings), since(state.pos[type])])} ORDER BY SystemModstamp ASC, Id ASC`;
    for await (const rows of deps.client.batches<PersonRow>(soql, batch)) {
      if (rows.length === 0) continue;
      const mapped = await mapRows(deps, rows, privacy, 'pull');
      const last = posOf(rows[rows.length - 1]);
      if (last) state.pos[type] = last;
      if (emitted) for (const r of rows) emitted.add(r.Id);
      yield page(mapped);
    }
  }
  if (!full && privacy) yield* followLinked(deps, state, emitted, page);
  // A run that found nothing still records where it stands (e.g. the heads a full run captured).
  if (JSON.stringify(state) !== yielded) yield page({ records: [], observations: [], rejects: [] });
}

/** Individuals and consents that changed since their cursor: re-read their Contacts / Leads. */
async function* followLinked(deps: PullDeps, state: CursorState, emitted: Set<string> | null, page: (m: MappedRows) => PullPage): AsyncGenerator<PullPage> {
  const batch = deps.settings.pageSize;
  const follow: [string, string, (r: { Id: string; PartyId?: string }) => string | undefined][] = [
    ['Individual', 'Id, SystemModstamp', (r) => r.Id],
    ['ContactPointTypeConsent', 'Id, PartyId, SystemModstamp', (r) => r.PartyId],
  ];
  for (const [object, fields, party] of follow) {
    const soql = `SELECT ${fields} FROM ${object}${where([since(state.pos[object])])} ORDER BY SystemModstamp ASC, Id ASC`;
    for await (const rows of deps.client.batches<{ Id: string; PartyId?: string; SystemModstamp: string }>(soql, batch)) {
      if (rows.length === 0) continue;
      const parties = rows.map(party).filter((x): x is string => typeof x === 'string');
      const persons = (await personsOfIndividuals(deps, parties, true)).filter((p) => !emitted?.has(p.Id));
      for (const p of persons) emitted?.add(p.Id);
      const mapped = await mapRows(deps, persons, true, 'pull');
      const last = posOf(rows[rows.length - 1]);
      if (last) state.pos[object] = last;
      yield page(mapped);
    }
  }
}
