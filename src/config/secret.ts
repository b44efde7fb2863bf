import { z } from 'zod';

/**
 * Secret fields are marked in the schema (faros redactConfig habit) so that every secret is
 * found automatically: the logger scrubs them, `redactConfig` hides them in `consentd check`
 * output. Mark with `secret()`; zod 4 keeps `.meta()` through `.min()` / `.regex()` clones,
 * and a WeakSet backs it up for the instance `secret()` returns.
 */
export const REDACTED = '[REDACTED]';

const marked = new WeakSet<object>();

/** A string schema marked secret; pass a refined string schema to add constraints. */
export function secret<T extends z.ZodType<string> = z.ZodString>(base?: T): T {
  const s = (base ?? z.string()).meta({ secret: true }) as T;
  marked.add(s);
  return s;
}

export function isSecretSchema(schema: z.ZodType): boolean {
  if (marked.has(schema)) return true;
  const meta = z.globalRegistry.get(schema) as { secret?: unknown } | undefined;
  return meta?.secret === true;
}

// zod 4 exposes each schema's definition on `_zod.def`; only the fields read here are typed.
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  element?: z.ZodType;
  items?: z.ZodType[];
  rest?: z.ZodType | null;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  discriminator?: string;
  left?: z.ZodType;
  right?: z.ZodType;
  getter?: () => z.ZodType;
}
interface Internals {
  def: Def;
  propValues?: Record<string, Set<unknown>>;
}
const internals = (s: z.ZodType): Internals => (s as unknown as { _zod: Internals })._zod;

const WRAPPERS = new Set(['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional', 'success']);

type OnSecret = (value: unknown) => unknown;

/**
 * Walk a *parsed* value along its schema and return a copy in which every value at a secret
 * position went through `onSecret`. Objects, arrays, tuples, records, optional / nullable /
 * default wrappers, pipes, unions (discriminated ones pick their option by discriminator,
 * plain ones try every option: erring on the side of "secret") and lazy schemas are followed.
 * A pipe whose output side is a transform is walked along its input side (transforms are
 * opaque); keys a transform renamed are then simply not found, which is fine as long as
 * secrets are not inside renamed objects.
 */
function walk(schema: z.ZodType, value: unknown, onSecret: OnSecret, depth = 0): unknown {
  if (value === undefined || value === null || depth > 64) return value;
  if (isSecretSchema(schema)) return onSecret(value);
  const { def } = internals(schema);
  if (WRAPPERS.has(def.type) && def.innerType) return walk(def.innerType, value, onSecret, depth + 1);
  switch (def.type) {
    case 'pipe': {
      if (def.in && isSecretSchema(def.in)) return onSecret(value);
      const next = def.out && internals(def.out).def.type !== 'transform' ? def.out : def.in;
      return next ? walk(next, value, onSecret, depth + 1) : value;
    }
    case 'lazy':
      return def.getter ? walk(def.getter(), value, onSecret, depth + 1) : value;
    case 'object': {
      if (typeof value !== 'object' || Array.isArray(value)) return value;
      const out: Record<string, unknown> = {};
      const catchall = def.catchall && internals(def.catchall).def.type !== 'never' ? def.catchall : undefined;
      for (const [k, v] of Object.entries(value)) {
        const field = def.shape?.[k] ?? catchall;
        out[k] = field ? walk(field, v, onSecret, depth + 1) : v;
      }
      return out;
    }
    case 'array':
      return Array.isArray(value) && def.element ? value.map((v) => walk(def.element as z.ZodType, v, onSecret, depth + 1)) : value;
    case 'tuple':
      if (!Array.isArray(value)) return value;
      return value.map((v, i) => {
        const s = def.items?.[i] ?? def.rest ?? undefined;
        return s ? walk(s, v, onSecret, depth + 1) : v;
      });
    case 'record': {
      if (typeof value !== 'object' || Array.isArray(value) || !def.valueType) return value;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(def.valueType, v, onSecret, depth + 1);
      return out;
    }
    case 'union': {
      const options = def.options ?? [];
      if (def.discriminator !== undefined && typeof value === 'object') {
        const tag = (value as Record<string, unknown>)[def.discriminator];
        const option = options.find((o) => internals(o).propValues?.[def.discriminator as string]?.has(tag));
        return option ? walk(option, value, onSecret, depth + 1) : value;
      }
      return options.reduce<unknown>((v, o) => walk(o, v, onSecret, depth + 1), value);
    }
    case 'intersection': {
      const left = def.left ? walk(def.left, value, onSecret, depth + 1) : value;
      return def.right ? walk(def.right, left, onSecret, depth + 1) : left;
    }
    default:
      return value;
  }
}

/** Every secret value in a parsed value (strings; other types stringified), deduplicated. */
export function collectSecrets(schema: z.ZodType, value: unknown): string[] {
  const found = new Set<string>();
  walk(schema, value, (v) => {
    if (Array.isArray(v)) for (const x of v) found.add(String(x));
    else if (typeof v === 'object' && v !== null) for (const x of Object.values(v)) found.add(String(x));
    else found.add(String(v));
    return v;
  });
  found.delete('');
  return [...found];
}

/** A copy of a parsed value with every secret replaced by "[REDACTED]" (the input is untouched). */
export function redactConfig<T>(schema: z.ZodType, value: T): T {
  return walk(schema, value, () => REDACTED) as T;
}
