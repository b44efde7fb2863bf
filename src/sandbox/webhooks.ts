/**
 * Delivers webhooks the way platforms do: in the background, retrying non-2xx answers on a
 * schedule. Tests and benchmarks await `idle()` to know every delivery has settled.
 */
export interface WebhookDelivery {
  url: string;
  method?: 'POST';
  headers: Record<string, string>;
  body: string | Buffer;
  /**
   * Optional acknowledgement check on the listener's answer (status and body text). Without it,
   * any 2xx counts as delivered. Salesforce Outbound Messages, for one, need `<Ack>true</Ack>`.
   */
  accept?: (status: number, body: string) => boolean;
}

export interface DeliveryRecord {
  url: string;
  attempts: number;
  status: number | 'error';
  deliveredAt: string | null;
}

export class WebhookSender {
  readonly log: DeliveryRecord[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private stopped = false;

  /** retryDelaysMs: wait before each retry; the platform's own schedule, shortened for a sandbox. */
  constructor(private readonly retryDelaysMs: readonly number[] = [200, 1000, 5000]) {}

  send(delivery: WebhookDelivery | (() => WebhookDelivery)): void {
    const p = this.deliver(delivery).finally(() => this.inFlight.delete(p));
    this.inFlight.add(p);
  }

  async idle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  stop(): void {
    this.stopped = true;
  }

  private async deliver(delivery: WebhookDelivery | (() => WebhookDelivery)): Promise<void> {
    const rec: DeliveryRecord = { url: '', attempts: 0, status: 'error', deliveredAt: null };
    this.log.push(rec);
    for (let attempt = 0; attempt <= this.retryDelaysMs.length && !this.stopped; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, this.retryDelaysMs[attempt - 1]));
      // A factory lets a platform re-sign each attempt (fresh timestamp), as HubSpot does.
      const d = typeof delivery === 'function' ? delivery() : delivery;
      rec.url = d.url;
      rec.attempts++;
      try {
        const res = await fetch(d.url, { method: d.method ?? 'POST', headers: d.headers, body: d.body, signal: AbortSignal.timeout(10_000) });
        let text = '';
        if (d.accept) text = await res.text();
        else await res.arrayBuffer();
        rec.status = res.status;
        if (d.accept ? d.accept(res.status, text) : res.ok) {
          rec.deliveredAt = new Date().toISOString();
          return;
        }
      } catch {
        rec.status = 'error';
      }
    }
  }
}
