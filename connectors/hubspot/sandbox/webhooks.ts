/**
 * Webhooks v3 as HubSpot sends them: a JSON array of up to 100 events, batched over a short
 * window, POSTed with X-HubSpot-Signature-v3 = base64(HMAC-SHA256(appSecret,
 * method + uri + body + timestamp)). Non-2xx answers are retried by the kit's WebhookSender;
 * each attempt is re-signed with a fresh timestamp and attemptNumber + 1, same eventIds.
 */
import { createHmac } from 'node:crypto';
import type { WebhookDelivery, WebhookSender } from '../../../src/sandbox/webhooks.js';
import type { StateEvent } from './state.js';

export const MAX_EVENTS_PER_REQUEST = 100;

export interface HubSpotEvent {
  eventId: number;
  subscriptionId: number;
  portalId: number;
  appId: number;
  occurredAt: number;
  subscriptionType: string;
  attemptNumber: number;
  objectId: number;
  changeSource: string;
  sourceId: string;
  propertyName?: string;
  propertyValue?: string;
  changeFlag?: string;
  mergedObjectIds?: number[];
  newObjectId?: number;
  primaryObjectId?: number;
}

/** The v3 signature (also what the SDK's Signature.isValid({signatureVersion:'v3'}) computes). */
export function signV3(appSecret: string, method: string, uri: string, body: string, timestamp: number | string): string {
  return createHmac('sha256', appSecret).update(`${method}${uri}${body}${timestamp}`).digest('base64');
}

export interface EmitterOptions {
  sender: WebhookSender;
  appSecret: string;
  portalId: number;
  appId: number;
  url: string | undefined;
  /** Batching window in ms. */
  batchMs: number;
  /** Property names that have a propertyChange subscription ('*' suffix = prefix). */
  properties: readonly string[];
}

export class HubSpotWebhookEmitter {
  url: string | undefined;
  /** Every event produced (capped at the last 10,000), for inspection. */
  readonly emitted: HubSpotEvent[] = [];
  private queue: Omit<HubSpotEvent, 'attemptNumber'>[] = [];
  private timer: NodeJS.Timeout | null = null;
  private nextEventId = 1;
  private readonly subscriptionIds = new Map<string, number>();
  private stopped = false;

  constructor(private readonly opts: EmitterOptions) {
    this.url = opts.url;
  }

  private watched(property: string): boolean {
    return this.opts.properties.some((p) => (p.endsWith('*') ? property.startsWith(p.slice(0, -1)) : p === property));
  }

  /** Stable webhook subscription id per (subscriptionType, propertyName). */
  private subscriptionId(type: string, property?: string): number {
    const key = `${type}:${property ?? ''}`;
    let id = this.subscriptionIds.get(key);
    if (id === undefined) {
      id = 2_100_000 + this.subscriptionIds.size + 1;
      this.subscriptionIds.set(key, id);
    }
    return id;
  }

  handle(e: StateEvent): void {
    if (this.stopped) return;
    if (e.type === 'contact.propertyChange' && !this.watched(e.propertyName)) return;
    const base = {
      eventId: this.nextEventId++,
      portalId: this.opts.portalId,
      appId: this.opts.appId,
      occurredAt: e.at,
      subscriptionType: e.type,
      objectId: e.objectId,
      changeSource: e.ctx.changeSource,
      sourceId: e.ctx.sourceId,
    };
    let ev: Omit<HubSpotEvent, 'attemptNumber'>;
    if (e.type === 'contact.propertyChange') {
      ev = { ...base, subscriptionId: this.subscriptionId(e.type, e.propertyName), propertyName: e.propertyName, propertyValue: e.propertyValue };
    } else if (e.type === 'contact.merge') {
      ev = { ...base, subscriptionId: this.subscriptionId(e.type), mergedObjectIds: e.mergedObjectIds, newObjectId: e.newObjectId, primaryObjectId: e.objectId };
    } else {
      ev = { ...base, subscriptionId: this.subscriptionId(e.type), changeFlag: e.type === 'contact.creation' ? 'CREATED' : 'DELETED' };
    }
    this.emitted.push({ ...ev, attemptNumber: 0 });
    if (this.emitted.length > 10_000) this.emitted.splice(0, this.emitted.length - 10_000);
    if (!this.url) return;
    this.queue.push(ev);
    if (this.queue.length >= MAX_EVENTS_PER_REQUEST) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.opts.batchMs);
  }

  /** Hands every queued event to the sender now. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const url = this.url;
    while (this.queue.length > 0 && url) {
      const batch = this.queue.splice(0, MAX_EVENTS_PER_REQUEST);
      let attempt = 0;
      const { appSecret } = this.opts;
      this.opts.sender.send((): WebhookDelivery => {
        const body = JSON.stringify(batch.map((ev) => ({ ...ev, attemptNumber: attempt })));
        attempt++;
        const timestamp = Date.now();
        return {
          url,
          method: 'POST',
          body,
          headers: {
            'Content-Type': 'application/json',
            'X-HubSpot-Signature-v3': signV3(appSecret, 'POST', url, body, timestamp),
            'X-HubSpot-Signature-Version': 'v3',
            'X-HubSpot-Request-Timestamp': String(timestamp),
            'User-Agent': 'HubSpot Connect 2.0 (http://dev.hubspot.com/) (namespace: webhooks-nio)',
          },
        };
      });
    }
    this.queue = [];
  }

  /** Flushes and waits until every delivery (with its retries) has settled. */
  async idle(): Promise<void> {
    this.flush();
    await this.opts.sender.idle();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
  }

  reset(): void {
    this.queue = [];
    this.emitted.length = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
