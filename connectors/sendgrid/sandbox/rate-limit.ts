export interface RateLimitSettings {
  /** Requests allowed per endpoint per window. */
  limit: number;
  windowMs: number;
}

export interface RateDecision {
  allowed: boolean;
  headers: Record<string, string>;
}

/**
 * Fixed-window limit per endpoint (method + route), as SendGrid applies them; every answer
 * carries X-RateLimit-Limit / -Remaining / -Reset (unix seconds when the window ends).
 */
export class EndpointRateLimiter {
  private readonly windows = new Map<string, { start: number; used: number }>();

  constructor(public settings: RateLimitSettings) {}

  take(endpoint: string, now: number): RateDecision {
    let w = this.windows.get(endpoint);
    if (!w || now >= w.start + this.settings.windowMs) {
      w = { start: now, used: 0 };
      this.windows.set(endpoint, w);
    }
    const allowed = w.used < this.settings.limit;
    if (allowed) w.used++;
    return { allowed, headers: this.headers(w, now) };
  }

  /** Headers without consuming (for injected 429s). */
  peek(endpoint: string, now: number): Record<string, string> {
    const w = this.windows.get(endpoint) ?? { start: now, used: this.settings.limit };
    return { ...this.headers(w, now), 'X-RateLimit-Remaining': '0' };
  }

  private headers(w: { start: number; used: number }, _now: number): Record<string, string> {
    return {
      'X-RateLimit-Limit': String(this.settings.limit),
      'X-RateLimit-Remaining': String(Math.max(0, this.settings.limit - w.used)),
      'X-RateLimit-Reset': String(Math.ceil((w.start + this.settings.windowMs) / 1000)),
    };
  }

  reset(): void {
    this.windows.clear();
  }
}
