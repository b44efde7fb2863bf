/**
 * The org's rolling 24-hour API request allowance (DailyApiRequests), counted in one-minute
 * buckets. Every REST call but the token/login call counts; calls refused for the limit do not.
 */
const DAY_MS = 24 * 60 * 60_000;
const BUCKET_MS = 60_000;

export class ApiLimits {
  private buckets: { t: number; n: number }[] = [];

  constructor(
    public max: number,
    private readonly now: () => number,
  ) {}

  used(): number {
    const from = this.now() - DAY_MS;
    while (this.buckets.length > 0 && (this.buckets[0]?.t ?? 0) + BUCKET_MS <= from) this.buckets.shift();
    let n = 0;
    for (const b of this.buckets) n += b.n;
    return n;
  }

  remaining(): number {
    return Math.max(0, this.max - this.used());
  }

  /** Counts one call; false (and not counted) when the allowance is spent. */
  take(): boolean {
    if (this.used() >= this.max) return false;
    const t = Math.floor(this.now() / BUCKET_MS) * BUCKET_MS;
    const last = this.buckets[this.buckets.length - 1];
    if (last && last.t === t) last.n++;
    else this.buckets.push({ t, n: 1 });
    return true;
  }

  /** Sets the usage of the current window (tests: "the org has used N calls today"). */
  setUsed(n: number): void {
    this.buckets = n > 0 ? [{ t: Math.floor(this.now() / BUCKET_MS) * BUCKET_MS, n }] : [];
  }

  header(): string {
    return `api-usage=${this.used()}/${this.max}`;
  }

  /** The DailyApiRequests entry of GET /limits. */
  snapshot(): { Max: number; Remaining: number } {
    return { Max: this.max, Remaining: this.remaining() };
  }
}
