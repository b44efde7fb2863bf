import { makeId, parseSeq, to15 } from './ids.js';
import { buildSchema, formatDateTime, type FieldDef, type ObjectDef, type Row, type Value } from './schema.js';

export type LookupStatus = 'ok' | 'malformed' | 'wrong_type' | 'missing' | 'deleted';
export type ChangeKind = 'create' | 'update';
export type ChangeListener = (table: Table, row: Row, kind: ChangeKind) => void;

type RowFactory = (n: number, values: Record<string, Value | undefined>, stamp: number, created: number, userId: string) => Row;

/**
 * Builds rows with one object literal holding every stored field (a generated function), so
 * each row is a single allocation with one hidden class: seeding a million stays fast.
 */
function rowFactory(def: ObjectDef): RowFactory {
  const props = def.stored.map((fd) => {
    const key = JSON.stringify(fd.name);
    switch (fd.name) {
      case 'CreatedDate':
        return `${key}: created`;
      case 'LastModifiedDate':
      case 'SystemModstamp':
        return `${key}: stamp`;
      case 'CreatedById':
      case 'LastModifiedById':
        return `${key}: userId`;
      default:
        return `${key}: v[${key}] ?? ${JSON.stringify(fd.defaultValue ?? null)}`;
    }
  });
  return new Function('n', 'v', 'stamp', 'created', 'userId', `return { $n: n, $deleted: false, ${props.join(', ')} };`) as RowFactory;
}

const byStamp = (a: Row, b: Row): number => (a['SystemModstamp'] as number) - (b['SystemModstamp'] as number) || a.$n - b.$n;

/**
 * One sObject's rows. Rows live in an array indexed by sequence number (= id order); an index
 * ordered by (SystemModstamp, Id) is rebuilt lazily, once per batch of mutations, by merging
 * the rows that moved into the rows that did not; an Email index serves `Email = / IN`.
 */
export class Table {
  readonly rows: Row[] = [];
  private stampOrder: Row[] = [];
  /** rows[0 .. indexed) are in stampOrder (rows beyond are new). */
  private indexed = 0;
  private readonly moved = new Set<Row>();
  private readonly emailIndex = new Map<string, Row | Row[]>();
  private live = 0;

  private readonly factory: RowFactory;

  constructor(
    readonly def: ObjectDef,
    private readonly userId: string,
  ) {
    this.factory = rowFactory(def);
  }

  get name(): string {
    return this.def.name;
  }

  get liveCount(): number {
    return this.live;
  }

  idOf(row: Row): string {
    return makeId(this.def.keyPrefix, row.$n);
  }

  lookup(id: unknown): { status: LookupStatus; row?: Row } {
    if (typeof id !== 'string' || to15(id) === null) return { status: 'malformed' };
    const n = parseSeq(this.def.keyPrefix, id);
    if (n === null) return { status: to15(id)?.startsWith(this.def.keyPrefix) ? 'missing' : 'wrong_type' };
    const row = this.rows[n - 1];
    if (!row) return { status: 'missing' };
    return row.$deleted ? { status: 'deleted', row } : { status: 'ok', row };
  }

  get(id: string): Row | undefined {
    const r = this.lookup(id);
    return r.status === 'ok' ? r.row : undefined;
  }

  /** Field value as SOQL sees it (datetimes as epoch ms). */
  value(row: Row, field: FieldDef): Value {
    switch (field.name) {
      case 'Id':
        return this.idOf(row);
      case 'IsDeleted':
        return row.$deleted;
      case 'IsEmailBounced':
        return row['EmailBouncedReason'] != null || row['EmailBouncedDate'] != null;
      case 'Name':
        if (field.derived) {
          const first = row['FirstName'];
          const last = row['LastName'];
          return [first, last].filter((x) => typeof x === 'string' && x !== '').join(' ');
        }
        return row['Name'] ?? null;
      default:
        return row[field.name] ?? null;
    }
  }

  /** Field value as the REST API renders it. */
  render(row: Row, field: FieldDef): Value {
    const v = this.value(row, field);
    return field.type === 'datetime' && typeof v === 'number' ? formatDateTime(v) : v;
  }

  insert(values: Record<string, Value | undefined>, stamp: number, created = stamp): Row {
    const row = this.factory(this.rows.length + 1, values, stamp, created, this.userId);
    this.rows.push(row);
    this.live++;
    if (this.def.emailIndexed) this.indexEmail(row, row['Email'] ?? null);
    return row;
  }

  /** Records that the row's SystemModstamp changed. */
  touch(row: Row): void {
    if (row.$n <= this.indexed) this.moved.add(row);
  }

  setEmail(row: Row, email: Value): void {
    const old = row['Email'] ?? null;
    if (old === email) return;
    this.unindexEmail(row, old);
    row['Email'] = email;
    this.indexEmail(row, email);
  }

  markDeleted(row: Row, stamp: number): void {
    row.$deleted = true;
    row['SystemModstamp'] = stamp;
    this.touch(row);
    this.live--;
  }

  /** Every row (deleted too) ordered by SystemModstamp, Id. */
  byStamp(): Row[] {
    const fresh = this.rows.length > this.indexed ? this.rows.slice(this.indexed) : [];
    if (this.moved.size === 0 && fresh.length === 0) return this.stampOrder;
    const moved = this.moved;
    const kept = moved.size > 0 ? this.stampOrder.filter((r) => !moved.has(r)) : this.stampOrder;
    const add = moved.size > 0 ? [...moved, ...fresh] : fresh;
    add.sort(byStamp);
    const lastKept = kept[kept.length - 1];
    const firstAdd = add[0];
    if (kept.length === 0) this.stampOrder = add;
    else if (lastKept && firstAdd && byStamp(lastKept, firstAdd) <= 0) {
      if (kept === this.stampOrder) for (const r of add) kept.push(r);
      else this.stampOrder = kept.concat(add);
    } else {
      const out: Row[] = new Array<Row>(kept.length + add.length);
      let i = 0;
      let j = 0;
      let k = 0;
      while (i < kept.length && j < add.length) {
        const a = kept[i] as Row;
        const b = add[j] as Row;
        if (byStamp(a, b) <= 0) {
          out[k++] = a;
          i++;
        } else {
          out[k++] = b;
          j++;
        }
      }
      while (i < kept.length) out[k++] = kept[i++] as Row;
      while (j < add.length) out[k++] = add[j++] as Row;
      this.stampOrder = out;
    }
    this.indexed = this.rows.length;
    moved.clear();
    return this.stampOrder;
  }

  /** Rows (deleted too) whose Email equals this address, case-insensitively. */
  byEmail(email: string): Row[] {
    const hit = this.emailIndex.get(email.toLowerCase());
    return hit === undefined ? [] : Array.isArray(hit) ? hit : [hit];
  }

  private indexEmail(row: Row, email: Value): void {
    if (typeof email !== 'string' || email === '') return;
    const key = email.toLowerCase();
    const hit = this.emailIndex.get(key);
    if (hit === undefined) this.emailIndex.set(key, row);
    else if (Array.isArray(hit)) hit.push(row);
    else this.emailIndex.set(key, [hit, row]);
  }

  private unindexEmail(row: Row, email: Value): void {
    if (typeof email !== 'string' || email === '') return;
    const key = email.toLowerCase();
    const hit = this.emailIndex.get(key);
    if (hit === row) this.emailIndex.delete(key);
    else if (Array.isArray(hit)) {
      const rest = hit.filter((r) => r !== row);
      if (rest.length === 0) this.emailIndex.delete(key);
      else this.emailIndex.set(key, rest.length === 1 ? (rest[0] as Row) : rest);
    }
  }
}

export interface StateOptions {
  orgId: string;
  userId: string;
  privacyFeatures: boolean;
  now: () => number;
}

/** A plain view of a row for inspection: field name -> REST-rendered value. */
export type RecordView = Record<string, Value>;

/** The org's data: Contacts, Leads and (with privacy features) Individuals and consents. */
export class SalesforceState {
  readonly schema: Map<string, ObjectDef>;
  readonly tables = new Map<string, Table>();
  private readonly tablesLower = new Map<string, Table>();
  readonly purposeByName = new Map<string, Row>();
  private readonly listeners: ChangeListener[] = [];
  private lastStamp = 0;
  /** Who makes the changes now (LastModifiedById): the API user, unless inside as(). */
  private actor: string;

  constructor(readonly opts: StateOptions) {
    this.schema = buildSchema(opts.privacyFeatures);
    this.actor = opts.userId;
    this.reset();
  }

  /** Runs `fn` (synchronous) as another user: its changes carry that LastModifiedById. */
  as<T>(userId: string, fn: () => T): T {
    const previous = this.actor;
    this.actor = userId;
    try {
      return fn();
    } finally {
      this.actor = previous;
    }
  }

  reset(): void {
    this.tables.clear();
    this.tablesLower.clear();
    this.purposeByName.clear();
    for (const def of this.schema.values()) {
      const t = new Table(def, this.opts.userId);
      this.tables.set(def.name, t);
      this.tablesLower.set(def.name.toLowerCase(), t);
    }
  }

  /** Monotonic clock for SystemModstamp (never goes backwards). */
  now(): number {
    this.lastStamp = Math.max(this.lastStamp, this.opts.now());
    return this.lastStamp;
  }

  onChange(l: ChangeListener): void {
    this.listeners.push(l);
  }

  emit(table: Table, row: Row, kind: ChangeKind): void {
    for (const l of this.listeners) l(table, row, kind);
  }

  table(name: string): Table | undefined {
    return this.tablesLower.get(name.toLowerCase());
  }

  mustTable(name: string): Table {
    const t = this.tables.get(name);
    if (!t) throw new Error(`no table ${name}`);
    return t;
  }

  get contacts(): Table {
    return this.mustTable('Contact');
  }

  get leads(): Table {
    return this.mustTable('Lead');
  }

  /** The table an id belongs to (by key prefix). */
  tableOfId(id: string): Table | undefined {
    const id15 = to15(id);
    if (id15 === null) return undefined;
    for (const t of this.tables.values()) if (id15.startsWith(t.def.keyPrefix)) return t;
    return undefined;
  }

  /** Applies field changes, bumps LastModifiedDate/SystemModstamp and notifies listeners. */
  update(table: Table, row: Row, patch: Record<string, Value>, opts: { systemOnly?: boolean; silent?: boolean } = {}): void {
    for (const [k, v] of Object.entries(patch)) {
      if (k === 'Email' && table.def.emailIndexed) table.setEmail(row, v);
      else row[k] = v;
    }
    const stamp = this.now();
    if (!opts.systemOnly) {
      row['LastModifiedDate'] = stamp;
      if ('LastModifiedById' in row) row['LastModifiedById'] = this.actor;
    }
    row['SystemModstamp'] = stamp;
    table.touch(row);
    if (!opts.silent) this.emit(table, row, 'update');
  }

  create(table: Table, values: Record<string, Value>, opts: { silent?: boolean } = {}): Row {
    const row = table.insert(values, this.now());
    if (this.actor !== this.opts.userId) {
      if ('CreatedById' in row) row['CreatedById'] = this.actor;
      if ('LastModifiedById' in row) row['LastModifiedById'] = this.actor;
    }
    if (!opts.silent) this.emit(table, row, 'create');
    return row;
  }

  delete(table: Table, row: Row): void {
    table.markDeleted(row, this.now());
  }

  /** Every Contact and Lead row with this address (case-insensitive), deleted ones excluded. */
  peopleByEmail(email: string): { table: Table; row: Row }[] {
    const out: { table: Table; row: Row }[] = [];
    for (const t of [this.contacts, this.leads]) for (const row of t.byEmail(email)) if (!row.$deleted) out.push({ table: t, row });
    return out;
  }

  view(table: Table, row: Row): RecordView {
    const out: RecordView = {};
    for (const fd of table.def.fields) out[fd.name] = table.render(row, fd);
    return out;
  }

  /** Finds the Individual linked to these rows, or creates one and links every row to it. */
  ensureIndividual(people: { table: Table; row: Row }[], fields: Record<string, Value> = {}): { row: Row; created: boolean } | null {
    const individuals = this.tables.get('Individual');
    if (!individuals || people.length === 0) return null;
    for (const p of people) {
      const id = p.row['IndividualId'];
      if (typeof id === 'string') {
        const ind = individuals.get(id);
        if (ind) return { row: ind, created: false };
      }
    }
    const first = people[0]?.row;
    const ind = this.create(individuals, { FirstName: first?.['FirstName'] ?? null, LastName: first?.['LastName'] ?? 'Unknown', ...fields });
    const indId = individuals.idOf(ind);
    for (const p of people) this.update(p.table, p.row, { IndividualId: indId });
    return { row: ind, created: true };
  }

  purpose(name: string, stamp?: number): Row | undefined {
    const t = this.tables.get('DataUsePurpose');
    if (!t) return undefined;
    let row = this.purposeByName.get(name);
    if (!row) {
      row = stamp === undefined ? this.create(t, { Name: name }, { silent: true }) : t.insert({ Name: name }, stamp);
      this.purposeByName.set(name, row);
    }
    return row;
  }
}
