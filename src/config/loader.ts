import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parse as parseYaml, parseDocument, visit, Scalar } from 'yaml';
import type { Document, Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import type { ConnectorRegistry } from '../connectors/registry.js';
import { buildConfigSchema } from './schema.js';
import type { Config } from './schema.js';

/** One thing wrong with the config file. */
export interface ConfigProblem {
  /** Path inside the document, e.g. `connectors[1].settings.path`; '' for the whole file. */
  path: string;
  /** 1-based, when the YAML library can tell. */
  line?: number;
  column?: number;
  message: string;
}

/** Every configuration problem at once; code is stable for exit codes (fastify errors habit). */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(formatProblems(file, problems));
  }
}

function formatProblems(file: string, problems: ConfigProblem[]): string {
  const lines = problems.map((p) => {
    const where = p.line !== undefined ? `${file}:${p.line}:${p.column ?? 1}` : file;
    return `  ${where}${p.path ? ` ${p.path}` : ''}: ${p.message}`;
  });
  const n = problems.length;
  return `invalid config ${file} (${n} problem${n === 1 ? '' : 's'}):\n${lines.join('\n')}`;
}

export interface LoadConfigOptions {
  /** Variables for ${VAR} substitution; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Connector kinds; passed in so config does not import every connector. */
  registry: ConnectorRegistry;
}

/**
 * Read, substitute, validate and deep-freeze the config file. Throws ConfigError listing every
 * problem (YAML syntax, missing variables, schema violations) with file:line:column.
 */
export function loadConfig(file: string, opts: LoadConfigOptions): Config {
  const path = resolve(file);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(path, [{ path: '', message: `cannot read the file: ${(e as Error).message}` }]);
  }
  return parseConfig(text, { ...opts, file: path });
}

/** As loadConfig, from text; `file` names the source in errors and sets the base directory. */
export function parseConfig(text: string, opts: LoadConfigOptions & { file: string }): Config {
  const file = resolve(opts.file);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  const pos = (offset: number | undefined): { line?: number; column?: number } => {
    if (offset === undefined) return {};
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };

  if (doc.errors.length > 0) {
    // The first few: after a syntax error the parser's later complaints are mostly its cascade.
    const shown = doc.errors.slice(0, MAX_SYNTAX_ERRORS).map((e): ConfigProblem => {
      const lp = e.linePos?.[0];
      return { path: '', ...(lp ? { line: lp.line, column: lp.col } : {}), message: `YAML syntax: ${firstLine(e.message)}` };
    });
    const more = doc.errors.length - shown.length;
    if (more > 0) shown.push({ path: '', message: `(${more} further syntax error${more === 1 ? '' : 's'}, probably caused by the first)` });
    throw new ConfigError(file, shown);
  }

  const missing = substituteEnv(doc, opts.env ?? process.env, pos);
  if (missing.length > 0) throw new ConfigError(file, missing);

  const raw: unknown = doc.toJS({ maxAliasCount: 1000 }) ?? {};
  const schema = buildConfigSchema(opts.registry, { baseDir: dirname(file), file });
  const result = schema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.flatMap((iss) => describeIssue(iss, doc, pos));
    throw new ConfigError(file, problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)));
  }
  return deepFreeze(result.data);
}

const MAX_SYNTAX_ERRORS = 4;

function firstLine(s: string): string {
  return s.split('\n')[0]?.trim() ?? s;
}

const VAR = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

/**
 * ${VAR} and ${VAR:-default} in scalar values (not keys) are replaced. `:-` uses the default
 * when the variable is unset or empty, as in the shell; `$${` writes a literal `${`.
 * Substitution happens on parsed scalars, so a value cannot inject YAML structure. A plain
 * (unquoted) scalar that is exactly one reference is re-typed after substitution, so
 * `port: ${PORT:-8080}` is a number and `pii: ${LOG_PII:-false}` a boolean; quote it to keep a string.
 * YAML itself forbids an unquoted `${` inside a flow collection (`{ port: ${PORT} }`): use block
 * style for such values, or quote them (they then stay strings).
 */
function substituteEnv(doc: Document, env: NodeJS.ProcessEnv, pos: (o: number | undefined) => { line?: number; column?: number }): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const source = node.value;
      let missing = false;
      const out = source.replace(VAR, (whole, name: string | undefined, def: string | undefined) => {
        if (whole === '$${') return '${';
        const value = name === undefined ? undefined : env[name];
        if (value !== undefined && (value !== '' || def === undefined)) return value;
        if (def !== undefined) return def;
        missing = true;
        problems.push({ path: docPath(path), ...pos(node.range?.[0]), message: `environment variable ${name ?? '?'} is not set (use \${${name ?? 'VAR'}:-default} to give a default)` });
        return '';
      });
      if (missing || out === source) return;
      const single = /^\$\{[^}]*\}$/.test(source);
      if (single && node.type === Scalar.PLAIN && out !== '' && !/[\n:#]/.test(out)) {
        const typed: unknown = parseYaml(out);
        if (typeof typed === 'number' || typeof typed === 'boolean' || typed === null) {
          node.value = typed;
          return;
        }
      }
      node.value = out;
    },
  });
  return problems;
}

/** Dotted path of a node from yaml's visitor ancestry (Pair keys and Seq indexes). */
function docPath(ancestry: readonly unknown[]): string {
  const parts: Array<string | number> = [];
  for (let i = 0; i < ancestry.length; i++) {
    const a = ancestry[i];
    const next = ancestry[i + 1];
    if (isSeq(a) && next !== undefined) parts.push(a.items.indexOf(next as never));
    else if (a && typeof a === 'object' && 'key' in a && 'value' in a) {
      const k = (a as { key: unknown }).key;
      parts.push(isScalar(k) ? String(k.value) : String(k));
    }
  }
  return formatPath(parts);
}

export function formatPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else {
      const k = String(p);
      s += /^[A-Za-z_$][\w$-]*$/.test(k) ? (s ? `.${k}` : k) : `[${JSON.stringify(k)}]`;
    }
  }
  return s;
}

/** Offset of the deepest node that exists along `path` (a missing key points at its parent). */
function locate(doc: Document, path: ReadonlyArray<PropertyKey>, unknownKey?: string): number | undefined {
  const segs = unknownKey === undefined ? [...path] : [...path, unknownKey];
  let node: unknown = doc.contents;
  let offset = (doc.contents as YamlNode | null)?.range?.[0];
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    let next: unknown;
    let at: number | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      next = pair?.value;
      const pointAtKey = unknownKey !== undefined && i === segs.length - 1;
      at = pointAtKey ? (pair?.key as YamlNode | undefined)?.range?.[0] : ((pair?.value as YamlNode | null | undefined)?.range?.[0] ?? (pair?.key as YamlNode | undefined)?.range?.[0]);
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
      at = (next as YamlNode | undefined)?.range?.[0];
    }
    if (at === undefined) break;
    offset = at;
    node = next;
  }
  return offset;
}

function describeIssue(iss: z.core.$ZodIssue, doc: Document, pos: (o: number | undefined) => { line?: number; column?: number }): ConfigProblem[] {
  if (iss.code === 'unrecognized_keys') {
    return iss.keys.map((k) => ({
      path: formatPath([...iss.path, k]),
      ...pos(locate(doc, iss.path, k)),
      message: 'unknown key (check the spelling; see config/consentd.example.yaml for every key)',
    }));
  }
  let message = iss.message;
  if (iss.code === 'invalid_type' && iss.input === undefined) message = `is required (expected ${iss.expected})`;
  return [{ path: formatPath(iss.path), ...pos(locate(doc, iss.path)), message }];
}

/** Freeze an object graph (config is parsed once and never mutated). */
export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
