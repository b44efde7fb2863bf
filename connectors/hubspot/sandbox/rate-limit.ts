/**
 * HubSpot's private-app limits: a rolling 10-second window and a daily quota per token, plus
 * the search endpoints' own 5 requests/second. Rejected calls (429) do not consume quota.
 */
class Window {
  private readonly times: number[] = [];
  private head = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {}

  private prune(now: number): void {
    const edge = now - this.windowMs;
    while (this.head < this.times.length && (this.times[this.head] ?? 0) <= edge) this.head++;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times.splice(0, this.head);
      this.head = 0;
    }
  }

  used(now: number): number {
    this.prune(now);
    return this.times.length - this.head;
  }

  /** Counts usage within the last `ms` (<= windowMs). */
  usedWithin(now: number, ms: number): number {
    this.prune(now);
    const edge = now - ms;
    let n = 0;
    for (let i = this.times.length - 1; i >= this.head && (this.times[i] ?? 0) > edge; i--) n++;
    return n;
  }

  full(now: number): boolean {
    return this.used(now) >= this.limit;
  }

  take(now: number): void {
    this.times.push(now);
  }

  reset(): void {
    this.times.length = 0;
    this.head = 0;
  }
}

export interface RateLimitOptions {
  tenSecondlyLimit: number;
  dailyLimit: number;
  searchPerSecond: number;
}

export type LimitVerdict = 'ok' | 'TEN_SECONDLY_ROLLING' | 'DAILY' | 'SECONDLY';

export const TEN_SECONDS = 10_000;

export class RateLimiter {
  private readonly tenSec: Window;
  private readonly search: Window;
  private day = -1;
  private dailyUsed = 0;

  constructor(readonly opts: RateLimitOptions) {
    this.tenSec = new Window(opts.tenSecondlyLimit, TEN_SECONDS);
    this.search = new Window(opts.searchPerSecond, 1000);
  }

  private rollDay(now: number): void {
    const d = Math.floor(now / 86_400_000);
    if (d !== this.day) {
      this.day = d;
      this.dailyUsed = 0;
    }
  }

  /** Checks and, when allowed, consumes one call. */
  check(isSearch: boolean, now = Date.now()): LimitVerdict {
    this.rollDay(now);
    if (this.dailyUsed >= this.opts.dailyLimit) return 'DAILY';
    if (isSearch && this.search.full(now)) return 'SECONDLY';
    if (this.tenSec.full(now)) return 'TEN_SECONDLY_ROLLING';
    this.dailyUsed++;
    this.tenSec.take(now);
    if (isSearch) this.search.take(now);
    return 'ok';
  }

  /** X-HubSpot-RateLimit-* headers describing the state after this call. */
  headers(now = Date.now()): Record<string, string> {
    this.rollDay(now);
    const max = this.opts.tenSecondlyLimit;
    const used = this.tenSec.used(now);
    const secondly = Math.max(1, Math.ceil(max / 10));
    const usedSecond = this.tenSec.usedWithin(now, 1000);
    return {
      'X-HubSpot-RateLimit-Max': String(max),
      'X-HubSpot-RateLimit-Remaining': String(Math.max(0, max - used)),
      'X-HubSpot-RateLimit-Interval-Milliseconds': String(TEN_SECONDS),
      'X-HubSpot-RateLimit-Secondly': String(secondly),
      'X-HubSpot-RateLimit-Secondly-Remaining': String(Math.max(0, secondly - usedSecond)),
      'X-HubSpot-RateLimit-Daily': String(this.opts.dailyLimit),
      'X-HubSpot-RateLimit-Daily-Remaining': String(Math.max(0, this.opts.dailyLimit - this.dailyUsed)),
    };
  }

  reset(): void {
    this.tenSec.reset();
    this.search.reset();
    this.dailyUsed = 0;
  }
}

export function rateLimitBody(policy: Exclude<LimitVerdict, 'ok'>, correlationId: string): Record<string, unknown> {
  const message =
    policy === 'TEN_SECONDLY_ROLLING'
      ? 'You have reached your ten_secondly_rolling limit.'
      : policy === 'SECONDLY'
        ? 'You have reached your secondly limit.'
        : 'You have reached your daily limit.';
  return { status: 'error', message, errorType: 'RATE_LIMIT', correlationId, policyName: policy };
}
