/**
 * A parser for the SOQL subset the sandbox serves:
 *   SELECT f1, Rel.f2 | COUNT() FROM Object
 *   [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n] [OFFSET n]
 * cond: comparisons (= != <> < <= > >=), [NOT] IN (...), LIKE, NOT, parentheses, AND / OR (mixing
 * AND and OR without parentheses is rejected, as Salesforce does). Literals: 'strings' (with
 * backslash escapes), numbers, true / false / null, datetimes (2024-01-01T00:00:00Z, with
 * optional .sss and +hh:mm), dates (2024-01-01), TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n,
 * NEXT_N_DAYS:n.
 */
export class SoqlError extends Error {
  constructor(
    readonly errorCode: string,
    message: string,
  ) {
    super(message);
  }
}

export type Op = '=' | '!=' | '<' | '<=' | '>' | '>=';

export type Literal =
  | { k: 'string'; v: string }
  | { k: 'number'; v: number }
  | { k: 'bool'; v: boolean }
  | { k: 'null' }
  | { k: 'datetime'; v: number }
  | { k: 'date'; v: number }
  | { k: 'range'; from: number; to: number };

export interface FieldPath {
  text: string;
  parts: string[];
  pos: number;
}

export type Cond =
  | { k: 'and' | 'or'; items: Cond[] }
  | { k: 'not'; item: Cond }
  | { k: 'cmp'; field: FieldPath; op: Op; lit: Literal; pos: number }
  | { k: 'in'; field: FieldPath; not: boolean; lits: Literal[]; pos: number }
  | { k: 'like'; field: FieldPath; pattern: string; pos: number };

export interface OrderKey {
  field: FieldPath;
  desc: boolean;
  nullsLast: boolean;
}

export interface Soql {
  text: string;
  select: FieldPath[] | 'count';
  from: { name: string; pos: number };
  where: Cond | null;
  orderBy: OrderKey[];
  limit: number | null;
  offset: number | null;
}

interface Tok {
  t: 'ident' | 'string' | 'number' | 'datetime' | 'date' | 'op' | 'punct' | 'eof';
  v: string;
  pos: number;
}

/** Salesforce-style located message: the query line, a caret, row and column, the message. */
export function located(soql: string, pos: number, msg: string): string {
  const before = soql.slice(0, pos);
  const row = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const lineEnd = soql.indexOf('\n', pos);
  const line = soql.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
  const col = pos - lineStart + 1;
  return `\n${line}\n${' '.repeat(col - 1)}^\nERROR at Row:${row}:Column:${col}\n${msg}`;
}

const DATETIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})/;
const DATE_RE = /^\d{4}-\d{2}-\d{2}(?![\dT])/;
const NUMBER_RE = /^-?\d+(\.\d+)?/;
const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_.]*(:\d+)?/;
const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', "'": "'", '"': '"', '\\': '\\' };

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  const malformed = (pos: number, what: string): SoqlError => new SoqlError('MALFORMED_QUERY', located(s, pos, `unexpected token: ${what}`));
  while (i < s.length) {
    const c = s.charAt(i);
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const rest = s.slice(i, i + 64);
    if (c === "'") {
      let v = '';
      let j = i + 1;
      for (;;) {
        if (j >= s.length) throw new SoqlError('MALFORMED_QUERY', located(s, i, 'unexpected token: unterminated string literal'));
        const ch = s.charAt(j);
        if (ch === '\\') {
          const e = s.charAt(j + 1);
          // \% and \_ stay escaped for LIKE; other escapes resolve.
          if (e === '%' || e === '_') v += '\\' + e;
          else if (e in ESCAPES) v += ESCAPES[e];
          else throw new SoqlError('MALFORMED_QUERY', located(s, j, `Invalid string literal '${s.slice(i, j + 2)}'. Illegal character sequence '\\${e}' in string literal.`));
          j += 2;
        } else if (ch === "'") break;
        else {
          v += ch;
          j++;
        }
      }
      out.push({ t: 'string', v, pos: i });
      i = j + 1;
      continue;
    }
    let m = DATETIME_RE.exec(rest);
    if (m) {
      out.push({ t: 'datetime', v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    m = DATE_RE.exec(rest);
    if (m) {
      out.push({ t: 'date', v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    m = NUMBER_RE.exec(rest);
    if (m && (c !== '-' || /\d/.test(s.charAt(i + 1)))) {
      out.push({ t: 'number', v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    m = IDENT_RE.exec(s.slice(i));
    if (m) {
      out.push({ t: 'ident', v: m[0], pos: i });
      i += m[0].length;
      continue;
    }
    const two = s.slice(i, i + 2);
    if (two === '!=' || two === '<>' || two === '<=' || two === '>=') {
      out.push({ t: 'op', v: two === '<>' ? '!=' : two, pos: i });
      i += 2;
      continue;
    }
    if (c === '=' || c === '<' || c === '>') {
      out.push({ t: 'op', v: c, pos: i });
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      out.push({ t: 'punct', v: c, pos: i });
      i++;
      continue;
    }
    throw malformed(i, c);
  }
  out.push({ t: 'eof', v: '<EOF>', pos: s.length });
  return out;
}

const DAY = 86_400_000;

function dateLiteral(name: string, nowMs: number): Literal | null {
  const today = Math.floor(nowMs / DAY) * DAY;
  const [word, nStr] = name.toUpperCase().split(':');
  const n = nStr === undefined ? NaN : Number(nStr);
  switch (word) {
    case 'TODAY':
      return { k: 'range', from: today, to: today + DAY };
    case 'YESTERDAY':
      return { k: 'range', from: today - DAY, to: today };
    case 'TOMORROW':
      return { k: 'range', from: today + DAY, to: today + 2 * DAY };
    case 'LAST_N_DAYS':
      return Number.isFinite(n) ? { k: 'range', from: today - n * DAY, to: today + DAY } : null;
    case 'NEXT_N_DAYS':
      return Number.isFinite(n) ? { k: 'range', from: today + DAY, to: today + (n + 1) * DAY } : null;
    default:
      return null;
  }
}

const RESERVED = new Set(['SELECT', 'FROM', 'WHERE', 'AND', 'OR', 'NOT', 'IN', 'LIKE', 'ORDER', 'BY', 'LIMIT', 'OFFSET', 'ASC', 'DESC', 'NULLS', 'FIRST', 'LAST', 'TRUE', 'FALSE', 'NULL']);

export function parseSoql(text: string, nowMs: number = Date.now()): Soql {
  const toks = tokenize(text);
  let p = 0;
  const peek = (): Tok => toks[p] ?? { t: 'eof', v: '<EOF>', pos: text.length };
  const next = (): Tok => {
    const t = peek();
    p++;
    return t;
  };
  const unexpected = (t: Tok): SoqlError => new SoqlError('MALFORMED_QUERY', located(text, t.pos, `unexpected token: ${t.t === 'string' ? `'${t.v}'` : t.v}`));
  const isKw = (t: Tok, kw: string): boolean => t.t === 'ident' && t.v.toUpperCase() === kw;
  const expectKw = (kw: string): Tok => {
    const t = next();
    if (!isKw(t, kw)) throw unexpected(t);
    return t;
  };
  const expectPunct = (v: string): void => {
    const t = next();
    if (t.t !== 'punct' || t.v !== v) throw unexpected(t);
  };
  const fieldPath = (): FieldPath => {
    const t = next();
    if (t.t !== 'ident' || t.v.includes(':') || RESERVED.has(t.v.toUpperCase())) throw unexpected(t);
    return { text: t.v, parts: t.v.split('.'), pos: t.pos };
  };

  expectKw('SELECT');
  let select: FieldPath[] | 'count';
  if (isKw(peek(), 'COUNT') && toks[p + 1]?.v === '(') {
    p += 2;
    const t = next();
    if (t.t !== 'punct' || t.v !== ')') throw new SoqlError('MALFORMED_QUERY', located(text, t.pos, 'sandbox: only COUNT() is supported among aggregate functions'));
    select = 'count';
  } else {
    select = [fieldPath()];
    while (peek().t === 'punct' && peek().v === ',') {
      p++;
      select.push(fieldPath());
    }
    const seen = new Set<string>();
    for (const fp of select) {
      const key = fp.text.toLowerCase();
      if (seen.has(key)) throw new SoqlError('MALFORMED_QUERY', located(text, fp.pos, `duplicate field selected: ${fp.text}`));
      seen.add(key);
    }
  }
  expectKw('FROM');
  const fromTok = next();
  if (fromTok.t !== 'ident' || RESERVED.has(fromTok.v.toUpperCase())) throw unexpected(fromTok);
  const from = { name: fromTok.v, pos: fromTok.pos };

  const literal = (): Literal => {
    const t = next();
    switch (t.t) {
      case 'string':
        return { k: 'string', v: t.v };
      case 'number':
        return { k: 'number', v: Number(t.v) };
      case 'datetime': {
        const ms = Date.parse(t.v.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
        if (Number.isNaN(ms)) throw unexpected(t);
        return { k: 'datetime', v: ms };
      }
      case 'date': {
        const ms = Date.parse(`${t.v}T00:00:00Z`);
        if (Number.isNaN(ms)) throw unexpected(t);
        return { k: 'date', v: ms };
      }
      case 'ident': {
        const u = t.v.toUpperCase();
        if (u === 'TRUE' || u === 'FALSE') return { k: 'bool', v: u === 'TRUE' };
        if (u === 'NULL') return { k: 'null' };
        const d = dateLiteral(t.v, nowMs);
        if (d) return d;
        throw unexpected(t);
      }
      default:
        throw unexpected(t);
    }
  };

  const simple = (): Cond => {
    const field = fieldPath();
    const t = next();
    if (t.t === 'op') return { k: 'cmp', field, op: t.v as Op, lit: literal(), pos: t.pos };
    let not = false;
    let kw = t;
    if (isKw(t, 'NOT')) {
      not = true;
      kw = next();
    }
    if (isKw(kw, 'IN')) {
      expectPunct('(');
      const lits = [literal()];
      while (peek().t === 'punct' && peek().v === ',') {
        p++;
        lits.push(literal());
      }
      expectPunct(')');
      return { k: 'in', field, not, lits, pos: kw.pos };
    }
    if (!not && isKw(kw, 'LIKE')) {
      const lt = next();
      if (lt.t !== 'string') throw unexpected(lt);
      return { k: 'like', field, pattern: lt.v, pos: kw.pos };
    }
    throw unexpected(kw);
  };

  const term = (): Cond => {
    const t = peek();
    if (isKw(t, 'NOT')) {
      p++;
      return { k: 'not', item: term() };
    }
    if (t.t === 'punct' && t.v === '(') {
      p++;
      const c = cond();
      expectPunct(')');
      return c;
    }
    return simple();
  };

  const cond = (): Cond => {
    const first = term();
    let conj: 'and' | 'or' | null = null;
    const items = [first];
    for (;;) {
      const t = peek();
      const kw = isKw(t, 'AND') ? 'and' : isKw(t, 'OR') ? 'or' : null;
      if (kw === null) break;
      if (conj !== null && conj !== kw) throw unexpected(t);
      conj = kw;
      p++;
      items.push(term());
    }
    return conj === null ? first : { k: conj, items };
  };

  let where: Cond | null = null;
  if (isKw(peek(), 'WHERE')) {
    p++;
    where = cond();
  }
  const orderBy: OrderKey[] = [];
  if (isKw(peek(), 'ORDER')) {
    p++;
    expectKw('BY');
    for (;;) {
      const field = fieldPath();
      let desc = false;
      if (isKw(peek(), 'ASC')) p++;
      else if (isKw(peek(), 'DESC')) {
        p++;
        desc = true;
      }
      let nullsLast = desc;
      if (isKw(peek(), 'NULLS')) {
        p++;
        const t = next();
        if (isKw(t, 'FIRST')) nullsLast = false;
        else if (isKw(t, 'LAST')) nullsLast = true;
        else throw unexpected(t);
      }
      orderBy.push({ field, desc, nullsLast });
      if (peek().t === 'punct' && peek().v === ',') p++;
      else break;
    }
  }
  const intAfter = (): number => {
    const t = next();
    if (t.t !== 'number' || !/^\d+$/.test(t.v)) throw unexpected(t);
    return Number(t.v);
  };
  let limit: number | null = null;
  let offset: number | null = null;
  if (isKw(peek(), 'LIMIT')) {
    p++;
    limit = intAfter();
  }
  if (isKw(peek(), 'OFFSET')) {
    p++;
    const t = peek();
    offset = intAfter();
    if (offset > 2000) throw new SoqlError('NUMBER_OUTSIDE_VALID_RANGE', located(text, t.pos, 'Maximum SOQL offset allowed is 2000'));
  }
  const end = next();
  if (end.t !== 'eof') throw unexpected(end);
  return { text, select, from, where, orderBy, limit, offset };
}
