import { ConsentdError, UsageError } from '../errors.js';
import { Channel, normalizeEmail, Purpose } from '../model/index.js';

/** The normalized email of a command argument; a clear error naming the input otherwise (exit 64). */
export function emailArg(raw: string): string {
  const r = normalizeEmail(raw);
  if (!r.ok) throw new ConsentdError('INVALID_EMAIL', `invalid email ${JSON.stringify(raw)}: ${r.reason}`);
  return r.email;
}

export function channelArg(raw: string | undefined): Channel | undefined {
  if (raw === undefined) return undefined;
  const r = Channel.safeParse(raw.trim().toLowerCase());
  if (!r.success) throw new UsageError(`invalid channel ${JSON.stringify(raw)}: expected one of ${Channel.options.join(', ')}`);
  return r.data;
}

export function purposeArg(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const r = Purpose.safeParse(raw.trim());
  if (!r.success) throw new UsageError(`invalid purpose ${JSON.stringify(raw)}: "*" or a lower_snake_case id`);
  return r.data;
}

export function intArg(name: string, raw: string | undefined, min = 0): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw.trim())) throw new UsageError(`${name} must be a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min) throw new UsageError(`${name} must be at least ${min}`);
  return n;
}

/** "30s", "5m", "2h", "1500ms" or plain milliseconds. */
export function durationArg(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) throw new UsageError(`${name} must be a duration like 30s, 5m, 1500ms; got ${JSON.stringify(raw)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(m[1]) * unit);
}
