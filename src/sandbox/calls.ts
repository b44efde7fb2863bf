/** Counts every API call by endpoint ("GET /crm/v3/objects/contacts") and status, for the efficiency benchmarks. */
export class CallCounter {
  private readonly counts = new Map<string, number>();
  total = 0;

  count(endpoint: string, status: number): void {
    this.total++;
    const key = `${endpoint} ${status}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** { "POST /x 200": n, ... } */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  reset(): void {
    this.counts.clear();
    this.total = 0;
  }
}
