import { z } from 'zod';

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;
type Unit = keyof typeof UNIT_MS;
const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/;

export class DurationError extends Error {
  readonly code = 'INVALID_DURATION';
  constructor(readonly input: unknown, reason: string) {
    super(`invalid duration ${JSON.stringify(input)}: ${reason}`);
  }
}

/**
 * "500ms", "30s", "5m", "2h", "730d", "2w" -> milliseconds. A bare non-negative integer (number
 * or digit string) is taken as milliseconds. Throws DurationError with the accepted forms.
 */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isSafeInteger(input) || input < 0) throw new DurationError(input, 'a number must be a non-negative integer of milliseconds');
    return input;
  }
  const s = input.trim().toLowerCase();
  if (/^\d+$/.test(s)) return parseDuration(Number(s));
  const m = DURATION.exec(s);
  if (!m) throw new DurationError(input, 'expected a number followed by a unit: ms, s, m, h, d or w (e.g. "500ms", "30s", "5m", "2h", "730d")');
  const ms = Number(m[1]) * UNIT_MS[m[2] as Unit];
  if (!Number.isSafeInteger(Math.round(ms))) throw new DurationError(input, 'too large');
  return Math.round(ms);
}

/** zod schema: a duration string (or integer ms) in, milliseconds out. */
export function duration() {
  return z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      return parseDuration(v);
    } catch (e) {
      ctx.issues.push({ code: 'custom', input: v, message: e instanceof Error ? e.message : String(e) });
      return z.NEVER;
    }
  });
}
