import type { Faults } from '../../../src/sandbox/faults.js';
import { to15 } from './ids.js';
import type { FieldDef, Row, Value } from './schema.js';
import type { SalesforceState, Table } from './state.js';

/** A Salesforce error item: `{message, errorCode, fields?}` in an error array. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly fields?: string[],
  ) {
    super(message);
  }

  body(): { message: string; errorCode: string; fields?: string[] }[] {
    return [{ message: this.message, errorCode: this.errorCode, ...(this.fields ? { fields: this.fields } : {}) }];
  }
}

export interface SaveError {
  statusCode: string;
  message: string;
  fields: string[];
}

export interface SaveResult {
  id?: string;
  success: boolean;
  errors: SaveError[];
}

/** sObject Collections accept at most 200 records (or ids) per call. */
export const MAX_COLLECTION = 200;

const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const ROLLED_BACK: SaveError = {
  statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
  message: 'Record rolled back because not all records were valid and the request was using AllOrNone header',
  fields: [],
};

export interface Ctx {
  state: SalesforceState;
  faults: Faults;
  version: string;
}

function tableOf(ctx: Ctx, type: unknown): Table {
  if (typeof type !== 'string' || type === '') throw new RequestError(400, 'INVALID_TYPE', 'Must send a concrete entity type.');
  const t = ctx.state.table(type);
  if (!t) throw new RequestError(400, 'NOT_FOUND', `The requested resource does not exist`);
  return t;
}

/**
 * Converts one JSON field value. Type mismatches that Salesforce's JSON reader rejects fail the
 * whole request (JSON_PARSER_ERROR); value problems are per-record errors.
 */
function convert(ctx: Ctx, fd: FieldDef, raw: unknown): { value: Value; error?: SaveError } {
  const label = fd.label;
  const parserError = (kind: string): RequestError =>
    new RequestError(400, 'JSON_PARSER_ERROR', `Cannot deserialize instance of ${kind} from ${raw === null ? 'VALUE_NULL' : typeof raw === 'object' ? 'START_OBJECT' : 'VALUE_' + typeof raw} value ${JSON.stringify(raw)} or request may be missing a required field`);
  if (raw === null) {
    if (fd.type === 'boolean') return { value: false };
    return { value: null };
  }
  switch (fd.type) {
    case 'boolean':
      if (typeof raw !== 'boolean') throw parserError('boolean');
      return { value: raw };
    case 'datetime': {
      const ms = typeof raw === 'string' ? Date.parse(raw.replace(/([+-]\d{2})(\d{2})$/, '$1:$2')) : NaN;
      if (Number.isNaN(ms)) throw parserError('datetime');
      return { value: ms };
    }
    case 'reference':
    case 'id': {
      if (typeof raw !== 'string') throw parserError('reference');
      if (raw === '') return { value: null };
      if (to15(raw) === null) return { value: null, error: { statusCode: 'MALFORMED_ID', message: `${label}: id value of incorrect type: ${raw}`, fields: [fd.name] } };
      const target = fd.referenceTo ? ctx.state.tables.get(fd.referenceTo) : undefined;
      if (!target) return { value: raw };
      const r = target.lookup(raw);
      if (r.status === 'wrong_type') return { value: null, error: { statusCode: 'FIELD_INTEGRITY_EXCEPTION', message: `${label}: id value of incorrect type: ${raw}`, fields: [fd.name] } };
      if (r.status !== 'ok' || !r.row) return { value: null, error: { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: `invalid cross reference id`, fields: [] } };
      return { value: target.idOf(r.row) };
    }
    default: {
      if (typeof raw === 'object') throw parserError('string');
      const s = String(raw);
      if (s === '') return { value: null };
      if (s.length > fd.length) return { value: null, error: { statusCode: 'STRING_TOO_LONG', message: `${label}: data value too large: ${s.slice(0, 40)} (max length=${fd.length})`, fields: [fd.name] } };
      if (fd.type === 'email' && !EMAIL_RE.test(s)) return { value: null, error: { statusCode: 'INVALID_EMAIL_ADDRESS', message: `${label}: invalid email address: ${s}`, fields: [fd.name] } };
      if (fd.picklist && !fd.picklist.includes(s)) {
        return { value: null, error: { statusCode: 'INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST', message: `${label}: bad value for restricted picklist field: ${s}`, fields: [fd.name] } };
      }
      return { value: s };
    }
  }
}

/** Field name -> value for one record body; unknown fields fail the request. */
function readFields(ctx: Ctx, table: Table, rec: Record<string, unknown>, mode: 'create' | 'update'): { patch: Record<string, Value>; errors: SaveError[] } {
  const patch: Record<string, Value> = {};
  const errors: SaveError[] = [];
  const readOnly: string[] = [];
  for (const [key, raw] of Object.entries(rec)) {
    if (key === 'attributes' || (mode === 'update' && (key === 'id' || key === 'Id'))) continue;
    const fd = table.def.byLower.get(key.toLowerCase());
    if (!fd) throw new RequestError(400, 'INVALID_FIELD', `No such column '${key}' on sobject of type ${table.name}`);
    if (fd.name === 'Id' && mode === 'create') throw new RequestError(400, 'INVALID_FIELD', 'cannot specify Id in an insert call');
    if (mode === 'create' ? !fd.createable : !fd.updateable) {
      readOnly.push(fd.name);
      continue;
    }
    const c = convert(ctx, fd, raw);
    if (c.error) errors.push(c.error);
    else patch[fd.name] = c.value;
  }
  if (readOnly.length > 0) {
    errors.unshift({
      statusCode: 'INVALID_FIELD_FOR_INSERT_UPDATE',
      message: `Unable to create/update fields: ${readOnly.join(', ')}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
      fields: readOnly,
    });
  }
  const missing = table.def.required.filter((name) => (mode === 'create' ? patch[name] == null && table.def.byName.get(name)?.defaultValue == null : name in patch && patch[name] == null));
  if (missing.length > 0) errors.push({ statusCode: 'REQUIRED_FIELD_MISSING', message: `Required fields are missing: [${missing.join(', ')}]`, fields: missing });
  return { patch, errors };
}

function lockError(table: Table, row: Row | undefined): SaveError {
  return { statusCode: 'UNABLE_TO_LOCK_ROW', message: `unable to obtain exclusive access to this record or 1 records: ${row ? table.idOf(row) : ''}`, fields: [] };
}

function lookupError(table: Table, id: unknown, status: string): SaveError {
  switch (status) {
    case 'deleted':
      return { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] };
    case 'wrong_type':
      return { statusCode: 'MALFORMED_ID', message: `${table.def.label} ID: id value of incorrect type: ${String(id)}`, fields: ['Id'] };
    case 'missing':
      return { statusCode: 'INVALID_CROSS_REFERENCE_KEY', message: 'invalid cross reference id', fields: [] };
    default:
      return { statusCode: 'MALFORMED_ID', message: `malformed id ${String(id)}`, fields: ['Id'] };
  }
}

function records(body: unknown): { allOrNone: boolean; records: Record<string, unknown>[] } {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { records?: unknown }).records)) {
    throw new RequestError(400, 'JSON_PARSER_ERROR', 'The request body must be an object with a records array');
  }
  const b = body as { allOrNone?: unknown; records: unknown[] };
  if (b.records.length > MAX_COLLECTION) throw new RequestError(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${MAX_COLLECTION} records into this call`);
  for (const r of b.records) if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new RequestError(400, 'JSON_PARSER_ERROR', 'Each record must be an object');
  return { allOrNone: b.allOrNone === true, records: b.records as Record<string, unknown>[] };
}

function recordType(ctx: Ctx, rec: Record<string, unknown>, fallback?: string): Table {
  const attrs = rec['attributes'];
  const type = typeof attrs === 'object' && attrs !== null ? (attrs as { type?: unknown }).type : undefined;
  return tableOf(ctx, type ?? fallback);
}

function finish<T extends { errors: SaveError[] }>(items: T[], allOrNone: boolean, ok: (item: T) => SaveResult): SaveResult[] {
  const failed = items.some((i) => i.errors.length > 0);
  if (allOrNone && failed) return items.map((i) => ({ success: false, errors: i.errors.length > 0 ? i.errors : [ROLLED_BACK] }));
  return items.map((i) => (i.errors.length > 0 ? { success: false, errors: i.errors } : ok(i)));
}

/** PATCH /composite/sobjects */
export function updateMany(ctx: Ctx, body: unknown): SaveResult[] {
  const { allOrNone, records: recs } = records(body);
  const items = recs.map((rec) => {
    const table = recordType(ctx, rec);
    const id = rec['id'] ?? rec['Id'];
    const { patch, errors } = readFields(ctx, table, rec, 'update');
    if (id === undefined || id === null) return { table, patch, errors: [{ statusCode: 'MISSING_ARGUMENT', message: 'Id not specified in an update call', fields: ['Id'] }] };
    const found = table.lookup(id);
    if (found.status !== 'ok' || !found.row) return { table, patch, errors: [lookupError(table, id, found.status)] };
    if (errors.length === 0 && ctx.faults.itemFails()) errors.push(lockError(table, found.row));
    return { table, patch, errors, row: found.row };
  });
  const results = finish(items, allOrNone, (i) => ({ id: i.row ? i.table.idOf(i.row) : '', success: true, errors: [] }));
  if (!(allOrNone && items.some((i) => i.errors.length > 0))) for (const i of items) if (i.errors.length === 0 && i.row) ctx.state.update(i.table, i.row, i.patch);
  return results;
}

/** POST /composite/sobjects */
export function createMany(ctx: Ctx, body: unknown): SaveResult[] {
  const { allOrNone, records: recs } = records(body);
  const items = recs.map((rec) => {
    const table = recordType(ctx, rec);
    const { patch, errors } = readFields(ctx, table, rec, 'create');
    if (errors.length === 0 && ctx.faults.itemFails()) errors.push(lockError(table, undefined));
    return { table, patch, errors, id: '' };
  });
  if (allOrNone && items.some((i) => i.errors.length > 0)) return finish(items, true, () => ({ success: true, errors: [] }));
  for (const i of items) if (i.errors.length === 0) i.id = i.table.idOf(ctx.state.create(i.table, i.patch));
  return finish(items, false, (i) => ({ id: i.id, success: true, errors: [] }));
}

/** DELETE /composite/sobjects?ids=...&allOrNone= */
export function deleteMany(ctx: Ctx, ids: string[], allOrNone: boolean): SaveResult[] {
  if (ids.length > MAX_COLLECTION) throw new RequestError(400, 'EXCEEDED_ID_LIMIT', `record limit reached. cannot submit more than ${MAX_COLLECTION} records into this call`);
  const items = ids.map((id) => {
    const table = ctx.state.tableOfId(id);
    if (!table) return { id, errors: [lookupError(ctx.state.contacts, id, to15(id) === null ? 'malformed' : 'missing')] };
    const found = table.lookup(id);
    if (found.status !== 'ok' || !found.row) return { id, errors: [lookupError(table, id, found.status)] };
    const errors: SaveError[] = ctx.faults.itemFails() ? [lockError(table, found.row)] : [];
    return { id: table.idOf(found.row), errors, table, row: found.row };
  });
  const results = finish(items, allOrNone, (i) => ({ id: i.id, success: true, errors: [] }));
  if (!(allOrNone && items.some((i) => i.errors.length > 0))) for (const i of items) if (i.errors.length === 0 && i.table && i.row) ctx.state.delete(i.table, i.row);
  // Salesforce echoes the id on delete failures too.
  return results.map((r, k) => (r.success ? r : { id: items[k]?.id ?? '', ...r }));
}

function render(ctx: Ctx, table: Table, row: Row, fields: FieldDef[]): Record<string, unknown> {
  const out: Record<string, unknown> = { attributes: { type: table.name, url: `/services/data/v${ctx.version}/sobjects/${table.name}/${table.idOf(row)}` } };
  for (const fd of fields) out[fd.name] = table.render(row, fd);
  return out;
}

function fieldList(table: Table, names: unknown): FieldDef[] {
  if (names === undefined || names === null) return table.def.fields;
  const list = Array.isArray(names) ? names : String(names).split(',');
  return list.map((n) => {
    const fd = table.def.byLower.get(String(n).trim().toLowerCase());
    if (!fd) throw new RequestError(400, 'INVALID_FIELD', `No such column '${String(n)}' on entity '${table.name}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`);
    return fd;
  });
}

/** POST /composite/sobjects/{Type} {ids, fields}: records in order, null for ids not found. */
export function retrieveMany(ctx: Ctx, type: string, body: unknown): (Record<string, unknown> | null)[] {
  const table = tableOf(ctx, type);
  const b = (body ?? {}) as { ids?: unknown; fields?: unknown };
  if (!Array.isArray(b.ids)) throw new RequestError(400, 'JSON_PARSER_ERROR', 'ids must be an array');
  if (b.ids.length > 2000) throw new RequestError(400, 'EXCEEDED_ID_LIMIT', 'record limit reached. cannot submit more than 2000 records into this call');
  const fields = fieldList(table, b.fields ?? ['Id']);
  return b.ids.map((id) => {
    const row = table.lookup(id).row;
    return row && !row.$deleted ? render(ctx, table, row, fields) : null;
  });
}

function mustRow(table: Table, id: string): Row {
  const found = table.lookup(id);
  if (found.status === 'deleted') throw new RequestError(404, 'ENTITY_IS_DELETED', 'entity is deleted');
  if (found.status !== 'ok' || !found.row) throw new RequestError(404, 'NOT_FOUND', 'The requested resource does not exist');
  return found.row;
}

function firstError(errors: SaveError[]): RequestError {
  const e = errors[0] as SaveError;
  return new RequestError(400, e.statusCode, e.message, e.fields);
}

/** GET /sobjects/{Type}/{id}[?fields=] */
export function retrieveOne(ctx: Ctx, type: string, id: string, fields: string | null): Record<string, unknown> {
  const table = tableOf(ctx, type);
  return render(ctx, table, mustRow(table, id), fieldList(table, fields));
}

/** PATCH /sobjects/{Type}/{id} (204 on success). */
export function updateOne(ctx: Ctx, type: string, id: string, body: unknown): void {
  const table = tableOf(ctx, type);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError(400, 'JSON_PARSER_ERROR', 'The request body must be a JSON object');
  const row = mustRow(table, id);
  const { patch, errors } = readFields(ctx, table, body as Record<string, unknown>, 'update');
  if (errors.length > 0) throw firstError(errors);
  if (ctx.faults.itemFails()) throw firstError([lockError(table, row)]);
  ctx.state.update(table, row, patch);
}

/** POST /sobjects/{Type} (201). */
export function createOne(ctx: Ctx, type: string, body: unknown): SaveResult {
  const table = tableOf(ctx, type);
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new RequestError(400, 'JSON_PARSER_ERROR', 'The request body must be a JSON object');
  const { patch, errors } = readFields(ctx, table, body as Record<string, unknown>, 'create');
  if (errors.length > 0) throw firstError(errors);
  return { id: table.idOf(ctx.state.create(table, patch)), success: true, errors: [] };
}

/** DELETE /sobjects/{Type}/{id} (204). */
export function deleteOne(ctx: Ctx, type: string, id: string): void {
  const table = tableOf(ctx, type);
  ctx.state.delete(table, mustRow(table, id));
}

