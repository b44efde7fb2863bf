import { makeId, parseSeq, to15 } from './ids.js';
import { KEY_PREFIX, type FieldDef, type Row, type Value } from './schema.js';
import { located, parseSoql, SoqlError, type Cond, type FieldPath, type Literal, type Soql } from './soql.js';
import type { SalesforceState, Table } from './state.js';

type Getter = (row: Row) => Value;
type JsonRecord = Record<string, unknown>;

interface Resolved {
  fd: FieldDef;
  get: Getter;
  /** Set when the path crosses a parent relationship (Individual.ShouldForget). */
  rel?: { refFd: FieldDef; target: Table };
  owner: Table;
}

const NO_COLUMN = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";

function resolvePath(state: SalesforceState, table: Table, fp: FieldPath, soql: string): Resolved {
  let parts = fp.parts;
  if (parts.length > 1 && parts[0]?.toLowerCase() === table.name.toLowerCase()) parts = parts.slice(1);
  if (parts.length === 1) {
    const fd = table.def.byLower.get((parts[0] ?? '').toLowerCase());
    if (!fd) throw new SoqlError('INVALID_FIELD', located(soql, fp.pos, `No such column '${parts[0] ?? ''}' on entity '${table.name}'. ${NO_COLUMN}`));
    return { fd, get: (row) => table.value(row, fd), owner: table };
  }
  if (parts.length === 2) {
    const relName = (parts[0] ?? '').toLowerCase();
    const refFd = table.def.fields.find((d) => d.relationshipName?.toLowerCase() === relName);
    const target = refFd?.referenceTo ? state.tables.get(refFd.referenceTo) : undefined;
    if (!refFd || !target) {
      throw new SoqlError('INVALID_FIELD', located(soql, fp.pos, `Didn't understand relationship '${parts[0] ?? ''}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`));
    }
    const fd = target.def.byLower.get((parts[1] ?? '').toLowerCase());
    if (!fd) throw new SoqlError('INVALID_FIELD', located(soql, fp.pos, `No such column '${parts[1] ?? ''}' on entity '${target.name}'. ${NO_COLUMN}`));
    const get: Getter = (row) => {
      const ref = row[refFd.name];
      if (typeof ref !== 'string') return null;
      const parent = target.get(ref);
      return parent ? target.value(parent, fd) : null;
    };
    return { fd, get, rel: { refFd, target }, owner: target };
  }
  throw new SoqlError('INVALID_FIELD', located(soql, fp.pos, `sandbox: field path '${fp.text}' is deeper than one relationship`));
}

const isText = (t: FieldDef['type']): boolean => t === 'string' || t === 'email' || t === 'phone' || t === 'picklist' || t === 'textarea';
const isIdLike = (t: FieldDef['type']): boolean => t === 'id' || t === 'reference';

/** Checks a literal against the field's type; returns the comparable form (lower-case text, 15-char id, ms). */
function checkLiteral(r: Resolved, lit: Literal, soql: string, pos: number): Literal {
  const { fd } = r;
  const must = (type: string, quoted: boolean): SoqlError =>
    new SoqlError('INVALID_FIELD', located(soql, pos, `value of filter criterion for field '${fd.name}' must be of type ${type} and should ${quoted ? '' : 'not '}be enclosed in quotes`));
  if (lit.k === 'null') return lit;
  if (fd.type === 'boolean') {
    if (lit.k !== 'bool') throw must('boolean', false);
    return lit;
  }
  if (fd.type === 'datetime') {
    if (lit.k !== 'datetime' && lit.k !== 'range') throw must('dateTime', false);
    return lit;
  }
  if (isIdLike(fd.type)) {
    if (lit.k !== 'string') throw must('id', true);
    const id15 = to15(lit.v);
    if (id15 === null) throw new SoqlError('INVALID_QUERY_FILTER_OPERATOR', located(soql, pos, `invalid ID field: ${lit.v}`));
    return { k: 'string', v: id15 };
  }
  if (fd.type === 'textarea') throw new SoqlError('INVALID_FIELD', located(soql, pos, `field '${fd.name}' can not be filtered in a query call`));
  if (lit.k !== 'string') throw must('string', true);
  return { k: 'string', v: lit.v.toLowerCase() };
}

/** A getter returning the comparable form of the field (lower-case text, 15-char ids). */
function comparable(r: Resolved): Getter {
  const { fd, get } = r;
  if (isText(fd.type)) return (row) => {
    const v = get(row);
    return typeof v === 'string' ? v.toLowerCase() : v;
  };
  if (isIdLike(fd.type)) return (row) => {
    const v = get(row);
    return typeof v === 'string' ? v.slice(0, 15) : v;
  };
  return get;
}

function cmpOp(op: string, v: Value, lit: Literal): boolean {
  if (lit.k === 'null') return op === '=' ? v === null : op === '!=' ? v !== null : false;
  if (v === null) return op === '!=';
  if (lit.k === 'range') {
    const n = v as number;
    switch (op) {
      case '=':
        return n >= lit.from && n < lit.to;
      case '!=':
        return n < lit.from || n >= lit.to;
      case '<':
        return n < lit.from;
      case '<=':
        return n < lit.to;
      case '>':
        return n >= lit.to;
      default:
        return n >= lit.from;
    }
  }
  const l = (lit as { v: string | number | boolean }).v;
  switch (op) {
    case '=':
      return v === l;
    case '!=':
      return v !== l;
    case '<':
      return v < l;
    case '<=':
      return v <= l;
    case '>':
      return v > l;
    default:
      return v >= l;
  }
}

function likeRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '\\' && i + 1 < pattern.length) {
      re += pattern.charAt(++i).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else if (c === '%') re += '.*';
    else if (c === '_') re += '.';
    else re += c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'is');
}

function compile(state: SalesforceState, table: Table, cond: Cond, soql: string): (row: Row) => boolean {
  switch (cond.k) {
    case 'and': {
      const items = cond.items.map((c) => compile(state, table, c, soql));
      return (row) => items.every((f) => f(row));
    }
    case 'or': {
      const items = cond.items.map((c) => compile(state, table, c, soql));
      return (row) => items.some((f) => f(row));
    }
    case 'not': {
      const item = compile(state, table, cond.item, soql);
      return (row) => !item(row);
    }
    case 'cmp': {
      const r = resolvePath(state, table, cond.field, soql);
      const lit = checkLiteral(r, cond.lit, soql, cond.pos);
      if (cond.lit.k === 'null' && cond.op !== '=' && cond.op !== '!=') throw new SoqlError('INVALID_QUERY_FILTER_OPERATOR', located(soql, cond.pos, `invalid operator on null: ${cond.op}`));
      if (r.fd.type === 'boolean' && cond.op !== '=' && cond.op !== '!=') throw new SoqlError('INVALID_QUERY_FILTER_OPERATOR', located(soql, cond.pos, `invalid operator on boolean field: ${cond.op}`));
      // Fast path: Id of the queried table compared by sequence number.
      if (r.fd.type === 'id' && !r.rel && lit.k === 'string') {
        const n = parseSeq(table.def.keyPrefix, lit.v);
        if (n !== null) return (row) => cmpOp(cond.op, row.$n, { k: 'number', v: n });
      }
      const get = comparable(r);
      return (row) => cmpOp(cond.op, get(row), lit);
    }
    case 'in': {
      const r = resolvePath(state, table, cond.field, soql);
      if (r.fd.type === 'datetime' || r.fd.type === 'boolean') throw new SoqlError('INVALID_QUERY_FILTER_OPERATOR', located(soql, cond.pos, `invalid operator on ${r.fd.type} field: IN`));
      const lits = cond.lits.map((l) => checkLiteral(r, l, soql, cond.pos));
      const set = new Set<Value>(lits.map((l) => (l.k === 'null' ? null : (l as { v: Value }).v)));
      const get = comparable(r);
      return cond.not ? (row) => !set.has(get(row)) : (row) => set.has(get(row));
    }
    case 'like': {
      const r = resolvePath(state, table, cond.field, soql);
      if (!isText(r.fd.type) && !isIdLike(r.fd.type)) throw new SoqlError('INVALID_QUERY_FILTER_OPERATOR', located(soql, cond.pos, `invalid operator on ${r.fd.type} field: LIKE`));
      const re = likeRegex(cond.pattern);
      const get = r.get;
      return (row) => {
        const v = get(row);
        return typeof v === 'string' && re.test(v);
      };
    }
  }
}

function conjuncts(c: Cond | null): Cond[] {
  if (!c) return [];
  return c.k === 'and' ? c.items : [c];
}

const isField = (fp: FieldPath, table: Table, name: string): boolean => {
  const parts = fp.parts.length === 2 && fp.parts[0]?.toLowerCase() === table.name.toLowerCase() ? fp.parts.slice(1) : fp.parts;
  return parts.length === 1 && parts[0]?.toLowerCase() === name.toLowerCase();
};

/** The least SystemModstamp a matching row can have, when the condition implies one. */
function stampLowerBound(c: Cond, table: Table): number | null {
  switch (c.k) {
    case 'cmp':
      if (!isField(c.field, table, 'SystemModstamp') || (c.op !== '>' && c.op !== '>=' && c.op !== '=')) return null;
      return c.lit.k === 'datetime' ? c.lit.v : c.lit.k === 'range' ? (c.op === '>' ? c.lit.to : c.lit.from) : null;
    case 'and': {
      let best: number | null = null;
      for (const i of c.items) {
        const b = stampLowerBound(i, table);
        if (b !== null && (best === null || b > best)) best = b;
      }
      return best;
    }
    case 'or': {
      let least: number | null = null;
      for (const i of c.items) {
        const b = stampLowerBound(i, table);
        if (b === null) return null;
        if (least === null || b < least) least = b;
      }
      return least;
    }
    default:
      return null;
  }
}

/** First index in a SystemModstamp-ordered array whose stamp is >= stamp. */
export function lowerIndex(rows: Row[], stamp: number): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (((rows[mid] as Row)['SystemModstamp'] as number) < stamp) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

type Serializer = (row: Row) => JsonRecord;

export interface Prepared {
  table: Table;
  count: boolean;
  rows: Row[];
  serialize: Serializer;
}

function serializer(state: SalesforceState, table: Table, soql: Soql, version: string): Serializer {
  const base = `/services/data/v${version}/sobjects/`;
  const cols: ({ k: 'field'; fd: FieldDef } | { k: 'rel'; name: string; refFd: FieldDef; target: Table; fds: FieldDef[] })[] = [];
  for (const fp of soql.select === 'count' ? [] : soql.select) {
    const r = resolvePath(state, table, fp, soql.text);
    if (!r.rel) cols.push({ k: 'field', fd: r.fd });
    else {
      const name = r.rel.refFd.relationshipName ?? r.rel.target.name;
      const existing = cols.find((c) => c.k === 'rel' && c.name === name);
      if (existing && existing.k === 'rel') existing.fds.push(r.fd);
      else cols.push({ k: 'rel', name, refFd: r.rel.refFd, target: r.rel.target, fds: [r.fd] });
    }
  }
  return (row) => {
    const out: JsonRecord = { attributes: { type: table.name, url: base + table.name + '/' + table.idOf(row) } };
    for (const c of cols) {
      if (c.k === 'field') out[c.fd.name] = table.render(row, c.fd);
      else {
        const ref = row[c.refFd.name];
        const parent = typeof ref === 'string' ? c.target.get(ref) : undefined;
        if (!parent) out[c.name] = null;
        else {
          const p: JsonRecord = { attributes: { type: c.target.name, url: base + c.target.name + '/' + c.target.idOf(parent) } };
          for (const fd of c.fds) p[fd.name] = c.target.render(parent, fd);
          out[c.name] = p;
        }
      }
    }
    return out;
  };
}

/** Parses, checks and runs a query; the matching rows (references, not copies) in order. */
export function runQuery(state: SalesforceState, text: string, opts: { all: boolean; version: string }): Prepared {
  const soql = parseSoql(text, state.opts.now());
  const table = state.table(soql.from.name);
  if (!table) {
    throw new SoqlError('INVALID_TYPE', located(text, soql.from.pos, `sObject type '${soql.from.name}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`));
  }
  const serialize = serializer(state, table, soql, opts.version);
  const pred = soql.where ? compile(state, table, soql.where, text) : null;
  const order = soql.orderBy.map((o) => {
    const r = resolvePath(state, table, o.field, text);
    if (r.fd.type === 'textarea') throw new SoqlError('INVALID_FIELD', located(text, o.field.pos, `field '${r.fd.name}' can not be sorted in a query call`));
    return { ...o, get: comparable(r), fd: r.fd };
  });

  // Plan the scan: an index when the conditions allow it, else every row in id order.
  const conj = conjuncts(soql.where);
  let source: Row[] = table.rows;
  let start = 0;
  let sorted = order.length === 0 || (order.length === 1 && order[0]?.fd.name === 'Id' && !order[0].desc);
  const emailCond = table.def.emailIndexed
    ? conj.find((c) => (c.k === 'cmp' && c.op === '=' && c.lit.k === 'string' && isField(c.field, table, 'Email')) || (c.k === 'in' && !c.not && isField(c.field, table, 'Email')))
    : undefined;
  const byStampOrder = order.length >= 1 && order[0]?.fd.name === 'SystemModstamp' && !order[0].desc && (order.length === 1 || (order.length === 2 && order[1]?.fd.name === 'Id' && !order[1].desc));
  const stampBound = soql.where ? stampLowerBound(soql.where, table) : null;
  if (emailCond) {
    const emails = emailCond.k === 'cmp' ? [emailCond.lit] : emailCond.k === 'in' ? emailCond.lits : [];
    const seen = new Set<Row>();
    for (const l of emails) if (l.k === 'string') for (const r of table.byEmail(l.v)) seen.add(r);
    source = [...seen].sort((a, b) => a.$n - b.$n);
  } else if (byStampOrder || (order.length === 0 && stampBound !== null)) {
    source = table.byStamp();
    if (stampBound !== null) start = lowerIndex(source, stampBound);
    sorted = true;
  } else {
    const idCond = conj.find((c) => c.k === 'cmp' && (c.op === '>' || c.op === '>=') && isField(c.field, table, 'Id'));
    if (idCond && idCond.k === 'cmp' && idCond.lit.k === 'string') {
      const n = parseSeq(table.def.keyPrefix, idCond.lit.v);
      if (n !== null) start = Math.min(n - 1, source.length);
    }
  }

  const wanted = soql.limit === null ? Infinity : (soql.offset ?? 0) + soql.limit;
  let rows: Row[] = [];
  for (let i = start; i < source.length; i++) {
    const row = source[i] as Row;
    if (row.$deleted && !opts.all) continue;
    if (pred && !pred(row)) continue;
    rows.push(row);
    if (sorted && rows.length >= wanted) break;
  }
  if (!sorted) {
    rows.sort((a, b) => {
      for (const o of order) {
        const va = o.get(a);
        const vb = o.get(b);
        if (va === vb) continue;
        if (va === null) return o.nullsLast ? 1 : -1;
        if (vb === null) return o.nullsLast ? -1 : 1;
        const c = va < vb ? -1 : 1;
        return o.desc ? -c : c;
      }
      return a.$n - b.$n;
    });
  }
  if (soql.offset !== null || soql.limit !== null) rows = rows.slice(soql.offset ?? 0, wanted);
  return { table, count: soql.select === 'count', rows, serialize };
}

interface Cursor {
  id: string;
  prepared: Prepared;
  batchSize: number;
  lastUsed: number;
}

export interface QueryPage {
  totalSize: number;
  done: boolean;
  nextRecordsUrl?: string;
  records: JsonRecord[];
}

/**
 * Open query cursors. Like Salesforce: at most 10 per user (the oldest is dropped), idle ones
 * expire (15 minutes), a finished one is gone. Pages slice the matched rows; nothing is copied.
 */
export class CursorStore {
  private readonly cursors = new Map<string, Cursor>();
  private seq = 0;

  constructor(
    private readonly now: () => number,
    readonly maxOpen = 10,
    readonly idleMs = 15 * 60_000,
  ) {}

  get size(): number {
    return this.cursors.size;
  }

  clear(): void {
    this.cursors.clear();
  }

  first(prepared: Prepared, batchSize: number, version: string): QueryPage {
    if (prepared.count) return { totalSize: prepared.rows.length, done: true, records: [] };
    this.expire();
    const cursor: Cursor = { id: makeId(KEY_PREFIX.QueryLocator, ++this.seq), prepared, batchSize, lastUsed: this.now() };
    return this.page(cursor, 0, batchSize, version, true);
  }

  /** `locator` is "<cursorId>-<offset>"; null when unknown or expired. */
  more(locator: string, batchSize: number | null, version: string): QueryPage | null {
    this.expire();
    const m = /^([0-9A-Za-z]{15,18})-(\d+)$/.exec(locator);
    if (!m) return null;
    const cursor = this.cursors.get(m[1] ?? '');
    if (!cursor) return null;
    this.cursors.delete(cursor.id);
    return this.page(cursor, Number(m[2]), batchSize ?? cursor.batchSize, version, false);
  }

  private page(cursor: Cursor, offset: number, batchSize: number, version: string, first: boolean): QueryPage {
    const rows = cursor.prepared.rows;
    const end = Math.min(rows.length, offset + batchSize);
    const records: JsonRecord[] = [];
    for (let i = offset; i < end; i++) records.push(cursor.prepared.serialize(rows[i] as Row));
    if (end >= rows.length) return { totalSize: rows.length, done: true, records };
    cursor.lastUsed = this.now();
    this.cursors.set(cursor.id, cursor);
    if (first) while (this.cursors.size > this.maxOpen) this.cursors.delete(this.cursors.keys().next().value as string);
    return { totalSize: rows.length, done: false, nextRecordsUrl: `/services/data/v${version}/query/${cursor.id}-${end}`, records };
  }

  private expire(): void {
    const limit = this.now() - this.idleMs;
    for (const [id, c] of this.cursors) if (c.lastUsed < limit) this.cursors.delete(id);
  }
}
