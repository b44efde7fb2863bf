/**
 * CRM search: filter evaluation, sorting, and the limits HubSpot enforces
 * (<= 5 filterGroups x 6 filters, 18 filters in all, limit <= 200, 10,000 results per query).
 * Range filters on lastmodifieddate use the state's (lastmodifieddate, id) index.
 */
import { validation } from './errors.js';
import { ID_BASE, type HubSpotState } from './state.js';

export const SEARCH_MAX_LIMIT = 200;
export const SEARCH_RESULT_CAP = 10_000;
export const MAX_GROUPS = 5;
export const MAX_FILTERS_PER_GROUP = 6;
export const MAX_FILTERS = 18;

export const OPERATORS = [
  'EQ',
  'NEQ',
  'LT',
  'LTE',
  'GT',
  'GTE',
  'BETWEEN',
  'IN',
  'NOT_IN',
  'HAS_PROPERTY',
  'NOT_HAS_PROPERTY',
  'CONTAINS_TOKEN',
  'NOT_CONTAINS_TOKEN',
] as const;
type Operator = (typeof OPERATORS)[number];

interface FilterIn {
  propertyName?: unknown;
  operator?: unknown;
  value?: unknown;
  values?: unknown;
  highValue?: unknown;
}

export interface SearchBody {
  filterGroups?: unknown;
  sorts?: unknown;
  properties?: unknown;
  limit?: unknown;
  after?: unknown;
  query?: unknown;
}

type Pred = (slot: number) => boolean;

interface Range {
  lo: number;
  hi: number;
}

export interface SearchPlan {
  groups: Pred[][];
  /** Union of lastmodifieddate ranges when every group has one. */
  range: Range | null;
  sort: { property: string; desc: boolean } | null;
  query: string | null;
  properties: string[] | null;
  limit: number;
  after: number;
  /** Cache key (filters + sort + query). */
  key: string;
}

const NUMERIC = new Set(['hs_object_id', 'createdate', 'lastmodifieddate']);

function numericAccessor(state: HubSpotState, name: string): (slot: number) => number {
  if (name === 'lastmodifieddate') return (s) => state.updatedAtOf(s);
  if (name === 'createdate') return (s) => state.createdAtOf(s);
  return (s) => s + ID_BASE;
}

/** Dates as ms epoch strings or ISO; numbers as numbers. */
function parseNumber(v: string, prop: string): number {
  const t = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(t)) return Number(t);
  const d = Date.parse(t);
  if (Number.isNaN(d)) throw validation(`${v} is not a valid value for property ${prop}`);
  return d;
}

function asString(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return undefined;
}

function tokenMatcher(pattern: string): (s: string) => boolean {
  const p = pattern.toLowerCase();
  if (p.includes('*')) {
    const re = new RegExp(`^${p.split('*').map((x) => x.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    return (s) => s.toLowerCase().split(/[\s@.,;]+/).some((tok) => re.test(tok)) || re.test(s.toLowerCase());
  }
  return (s) => {
    const low = s.toLowerCase();
    return low === p || low.split(/[\s@.,;]+/).includes(p);
  };
}

function compileFilter(state: HubSpotState, f: FilterIn, range: Range | null): { pred: Pred; range: Range | null } {
  const prop = asString(f.propertyName);
  const op = asString(f.operator) as Operator | undefined;
  if (!prop) throw validation('Filter propertyName is required');
  if (!op || !(OPERATORS as readonly string[]).includes(op)) throw validation(`Unsupported operator ${String(f.operator)}; supported: ${OPERATORS.join(', ')}`);
  const value = asString(f.value);
  const values = Array.isArray(f.values) ? f.values.map((x) => asString(x) ?? '') : undefined;
  const high = asString(f.highValue);
  const need = (v: string | undefined, what = 'value'): string => {
    if (v === undefined) throw validation(`Filter on ${prop} with operator ${op} requires ${what}`);
    return v;
  };

  if (op === 'HAS_PROPERTY') return { pred: (s) => state.prop(s, prop) !== null, range };
  if (op === 'NOT_HAS_PROPERTY') return { pred: (s) => state.prop(s, prop) === null, range };

  if (NUMERIC.has(prop)) {
    const get = numericAccessor(state, prop);
    let r: Range | null = null;
    let pred: Pred;
    switch (op) {
      case 'EQ': {
        const x = parseNumber(need(value), prop);
        pred = (s) => get(s) === x;
        r = { lo: x, hi: x };
        break;
      }
      case 'NEQ': {
        const x = parseNumber(need(value), prop);
        pred = (s) => get(s) !== x;
        break;
      }
      case 'GT': {
        const x = parseNumber(need(value), prop);
        pred = (s) => get(s) > x;
        r = { lo: x, hi: Infinity };
        break;
      }
      case 'GTE': {
        const x = parseNumber(need(value), prop);
        pred = (s) => get(s) >= x;
        r = { lo: x, hi: Infinity };
        break;
      }
      case 'LT': {
        const x = parseNumber(need(value), prop);
        pred = (s) => get(s) < x;
        r = { lo: -Infinity, hi: x };
        break;
      }
      case 'LTE': {
        const x = parseNumber(need(value), prop);
        pred = (s) => get(s) <= x;
        r = { lo: -Infinity, hi: x };
        break;
      }
      case 'BETWEEN': {
        const lo = parseNumber(need(value), prop);
        const hi = parseNumber(need(high, 'highValue'), prop);
        pred = (s) => {
          const v = get(s);
          return v >= lo && v <= hi;
        };
        r = { lo, hi };
        break;
      }
      case 'IN':
      case 'NOT_IN': {
        if (!values) throw validation(`Filter on ${prop} with operator ${op} requires values`);
        const set = new Set(values.map((v) => parseNumber(v, prop)));
        pred = op === 'IN' ? (s) => set.has(get(s)) : (s) => !set.has(get(s));
        break;
      }
      default: {
        const m = tokenMatcher(need(value));
        pred = op === 'CONTAINS_TOKEN' ? (s) => m(String(get(s))) : (s) => !m(String(get(s)));
      }
    }
    if (prop === 'lastmodifieddate' && r) {
      const cur: Range = range ?? { lo: -Infinity, hi: Infinity };
      range = { lo: Math.max(cur.lo, r.lo), hi: Math.min(cur.hi, r.hi) };
    }
    return { pred, range };
  }

  const get = (s: number): string | null => state.prop(s, prop);
  switch (op) {
    case 'EQ': {
      const x = need(value).toLowerCase();
      return { pred: (s) => (get(s) ?? '').toLowerCase() === x && get(s) !== null, range };
    }
    case 'NEQ': {
      const x = need(value).toLowerCase();
      return { pred: (s) => (get(s) ?? '').toLowerCase() !== x, range };
    }
    case 'IN':
    case 'NOT_IN': {
      // HubSpot: IN values for string properties must be lowercase; compared against the lowercased value.
      if (!values) throw validation(`Filter on ${prop} with operator ${op} requires values`);
      const set = new Set(values);
      return {
        pred: op === 'IN' ? (s) => set.has((get(s) ?? '').toLowerCase()) && get(s) !== null : (s) => !set.has((get(s) ?? '').toLowerCase()),
        range,
      };
    }
    case 'GT':
    case 'GTE':
    case 'LT':
    case 'LTE': {
      const x = need(value);
      const cmp = (a: string): number => (a < x ? -1 : a > x ? 1 : 0);
      const ok = (c: number): boolean => (op === 'GT' ? c > 0 : op === 'GTE' ? c >= 0 : op === 'LT' ? c < 0 : c <= 0);
      return {
        pred: (s) => {
          const v = get(s);
          return v !== null && ok(cmp(v));
        },
        range,
      };
    }
    case 'BETWEEN': {
      const lo = need(value);
      const hi = need(high, 'highValue');
      return {
        pred: (s) => {
          const v = get(s);
          return v !== null && v >= lo && v <= hi;
        },
        range,
      };
    }
    default: {
      const m = tokenMatcher(need(value));
      return {
        pred: op === 'CONTAINS_TOKEN' ? (s) => m(get(s) ?? '') : (s) => !m(get(s) ?? ''),
        range,
      };
    }
  }
}

function parseSort(raw: unknown): { property: string; desc: boolean } | null {
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw)) throw validation('sorts must be an array');
  if (raw.length === 0) return null;
  if (raw.length > 1) throw validation('Only one sort is supported');
  let s: unknown = raw[0];
  // The SDK types sorts as string[]; accept "prop", "-prop", a JSON object string, or an object.
  if (typeof s === 'string') {
    const t = s.trim();
    if (t.startsWith('{')) {
      try {
        s = JSON.parse(t) as unknown;
      } catch {
        throw validation(`Invalid sort ${t}`);
      }
    } else return t.startsWith('-') ? { property: t.slice(1), desc: true } : { property: t, desc: false };
  }
  if (typeof s === 'object' && s !== null) {
    const o = s as { propertyName?: unknown; direction?: unknown };
    const prop = asString(o.propertyName);
    if (!prop) throw validation('Sort propertyName is required');
    const dir = asString(o.direction) ?? 'ASCENDING';
    if (dir !== 'ASCENDING' && dir !== 'DESCENDING') throw validation(`Invalid sort direction ${dir}; use ASCENDING or DESCENDING`);
    return { property: prop, desc: dir === 'DESCENDING' };
  }
  throw validation('Invalid sort');
}

export function planSearch(state: HubSpotState, body: SearchBody): SearchPlan {
  const rawGroups = body.filterGroups ?? [];
  if (!Array.isArray(rawGroups)) throw validation('filterGroups must be an array');
  if (rawGroups.length > MAX_GROUPS) {
    throw validation(`Too many filter groups (${rawGroups.length}). The maximum number of filter groups is ${MAX_GROUPS}.`);
  }
  let total = 0;
  const groups: Pred[][] = [];
  const ranges: (Range | null)[] = [];
  for (const g of rawGroups as { filters?: unknown }[]) {
    const filters = g?.filters ?? [];
    if (!Array.isArray(filters)) throw validation('filters must be an array');
    if (filters.length > MAX_FILTERS_PER_GROUP) {
      throw validation(`Too many filters in a filter group (${filters.length}). The maximum number of filters per group is ${MAX_FILTERS_PER_GROUP}.`);
    }
    total += filters.length;
    let range: Range | null = null;
    const preds: Pred[] = [];
    for (const f of filters as FilterIn[]) {
      const c = compileFilter(state, f ?? {}, range);
      preds.push(c.pred);
      range = c.range;
    }
    groups.push(preds);
    ranges.push(range);
  }
  if (total > MAX_FILTERS) throw validation(`Too many filters (${total}). The maximum number of filters is ${MAX_FILTERS}.`);
  let range: Range | null = null;
  if (ranges.length > 0 && ranges.every((r) => r !== null)) {
    range = { lo: Math.min(...ranges.map((r) => (r as Range).lo)), hi: Math.max(...ranges.map((r) => (r as Range).hi)) };
  }
  const limitRaw = body.limit ?? 10;
  const limit = typeof limitRaw === 'number' ? limitRaw : Number(limitRaw);
  if (!Number.isInteger(limit) || limit < 0) throw validation(`Invalid limit ${String(limitRaw)}`);
  if (limit > SEARCH_MAX_LIMIT) throw validation(`limit must be less than or equal to ${SEARCH_MAX_LIMIT}`);
  const afterRaw = body.after ?? 0;
  const after = typeof afterRaw === 'number' ? afterRaw : /^\d+$/.test(String(afterRaw)) ? Number(afterRaw) : NaN;
  if (!Number.isInteger(after) || after < 0) throw validation(`Invalid after ${String(afterRaw)}`);
  const sort = parseSort(body.sorts);
  const query = asString(body.query)?.trim().toLowerCase() || null;
  const properties = Array.isArray(body.properties) ? body.properties.map((p) => String(p)) : null;
  return {
    groups,
    range,
    sort,
    query,
    properties,
    limit,
    after,
    key: JSON.stringify([body.filterGroups ?? [], body.sorts ?? [], query]),
  };
}

const QUERY_PROPS = ['email', 'firstname', 'lastname', 'phone', 'company'];

export interface SearchResult {
  total: number;
  /** First SEARCH_RESULT_CAP matches in order. */
  slots: number[];
}

export function runSearch(state: HubSpotState, plan: SearchPlan): SearchResult {
  const { groups, query } = plan;
  const match = (s: number): boolean => {
    if (query !== null && !QUERY_PROPS.some((p) => (state.prop(s, p) ?? '').toLowerCase().includes(query))) return false;
    if (groups.length === 0) return true;
    for (const g of groups) {
      let ok = true;
      for (const p of g) {
        if (!p(s)) {
          ok = false;
          break;
        }
      }
      if (ok) return true;
    }
    return false;
  };

  const sort = plan.sort;
  const byLastMod = sort?.property === 'lastmodifieddate';
  const byId = sort === null || sort.property === 'hs_object_id';
  let total = 0;
  const out: number[] = [];

  // Streams in the final order: count everything, keep the first CAP.
  const keep = (s: number): boolean => {
    if (match(s)) {
      total++;
      if (out.length < SEARCH_RESULT_CAP) out.push(s);
    }
    return true;
  };

  if (byLastMod) {
    const r = plan.range ?? { lo: -Infinity, hi: Infinity };
    state.scanByLastModified(r.lo, r.hi, sort.desc, keep);
    return { total, slots: out };
  }
  if (byId && plan.range === null) {
    if (sort?.desc) {
      const all: number[] = [];
      state.scanById(0, false, (s) => {
        if (match(s)) all.push(s);
        return true;
      });
      all.reverse();
      return { total: all.length, slots: all.slice(0, SEARCH_RESULT_CAP) };
    }
    state.scanById(0, false, keep);
    return { total, slots: out };
  }
  // Collect, then sort.
  const all: number[] = [];
  const collect = (s: number): boolean => {
    if (match(s)) all.push(s);
    return true;
  };
  if (plan.range) state.scanByLastModified(plan.range.lo, plan.range.hi, false, collect);
  else state.scanById(0, false, collect);
  const desc = sort?.desc ?? false;
  const prop = sort?.property ?? 'hs_object_id';
  if (NUMERIC.has(prop)) {
    const get = numericAccessor(state, prop);
    all.sort((a, b) => (desc ? get(b) - get(a) : get(a) - get(b)) || a - b);
  } else {
    const keys = new Map<number, string | null>();
    for (const s of all) keys.set(s, state.prop(s, prop));
    all.sort((a, b) => {
      const x = keys.get(a) ?? null;
      const y = keys.get(b) ?? null;
      if (x === y) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      const c = x < y ? -1 : 1;
      return desc ? -c : c;
    });
  }
  return { total: all.length, slots: all.slice(0, SEARCH_RESULT_CAP) };
}
