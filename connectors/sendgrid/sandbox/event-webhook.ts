import { generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { seededRandom, type Random } from '../../../src/sandbox/random.js';
import type { WebhookSender } from '../../../src/sandbox/webhooks.js';

export type SgEventType = 'unsubscribe' | 'group_unsubscribe' | 'group_resubscribe' | 'spamreport' | 'bounce' | 'dropped';

export interface SgEvent {
  email: string;
  /** unix seconds */
  timestamp: number;
  event: SgEventType;
  sg_event_id: string;
  sg_message_id: string;
  'smtp-id'?: string;
  asm_group_id?: number;
  type?: 'bounce' | 'blocked';
  reason?: string;
  status?: string;
  ip?: string;
  useragent?: string;
  category?: string[];
}

export interface EventWebhookOptions {
  url?: string | undefined;
  /** Fraction of events delivered a second time in a later POST (SendGrid is at-least-once). */
  duplicateRate?: number;
  /** Shuffle events inside each POST (SendGrid does not guarantee order). */
  outOfOrder?: boolean;
  /** Events are gathered for this long and posted together (default 20 ms). */
  batchWindowMs?: number;
  seed?: number;
}

export const SIGNATURE_HEADER = 'X-Twilio-Email-Event-Webhook-Signature';
export const TIMESTAMP_HEADER = 'X-Twilio-Email-Event-Webhook-Timestamp';

function randomId(bytes = 16): string {
  return randomBytes(bytes).toString('base64url');
}

/**
 * The Signed Event Webhook: a P-256 key pair made at start (the public key, base64 DER, is what
 * the account's Mail Settings would show), events gathered into JSON-array POSTs, each attempt
 * signed afresh: base64(DER(ECDSA-SHA256(timestamp + rawBody))).
 */
export class SendGridEventWebhook {
  readonly publicKey: string;
  private readonly privateKey: KeyObject;
  /** Every event emitted (before delivery), in order. */
  readonly emitted: SgEvent[] = [];
  private queue: SgEvent[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly flushes = new Set<Promise<void>>();
  private readonly random: Random;
  /** Events already re-sent once: a duplicate is not duplicated again. */
  private readonly duplicates = new WeakSet<SgEvent>();

  constructor(
    private readonly sender: WebhookSender,
    public opts: EventWebhookOptions,
  ) {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    this.publicKey = publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
    this.privateKey = privateKey;
    this.random = seededRandom(opts.seed ?? 7);
  }

  signature(timestamp: string, body: string): string {
    return sign('sha256', Buffer.from(timestamp + body, 'utf8'), this.privateKey).toString('base64');
  }

  emit(e: Omit<SgEvent, 'sg_event_id' | 'sg_message_id' | 'timestamp'> & { timestamp?: number }, nowMs: number): SgEvent {
    const event: SgEvent = {
      ...e,
      timestamp: e.timestamp ?? Math.floor(nowMs / 1000),
      sg_event_id: randomId(),
      sg_message_id: `${randomId(12)}.recvd-sandbox-1-${Math.floor(nowMs / 1000).toString(16)}-0.0`,
    };
    this.emitted.push(event);
    if (!this.opts.url) return event;
    this.queue.push(event);
    this.schedule();
    return event;
  }

  private schedule(): void {
    if (this.timer) return;
    let resolveFlush: () => void = () => undefined;
    const p = new Promise<void>((r) => (resolveFlush = r));
    this.flushes.add(p);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
      this.flushes.delete(p);
      resolveFlush();
    }, this.opts.batchWindowMs ?? 20);
  }

  private flush(): void {
    const url = this.opts.url;
    const batch = this.queue;
    this.queue = [];
    if (!url || batch.length === 0) return;
    const events = this.opts.outOfOrder ? shuffle(batch, this.random) : batch;
    // Duplicates come in a later POST, the way a retried or replayed delivery would.
    const rate = this.opts.duplicateRate ?? 0;
    const again = events.filter((e) => rate > 0 && !this.duplicates.has(e) && this.random() < rate);
    for (const e of again) this.duplicates.add(e);
    this.post(url, events);
    if (again.length > 0) {
      this.queue.push(...again);
      this.schedule();
    }
  }

  private post(url: string, events: SgEvent[]): void {
    const body = JSON.stringify(events);
    this.sender.send(() => {
      const timestamp = String(Math.floor(Date.now() / 1000));
      return {
        url,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'SendGrid Event API',
          [SIGNATURE_HEADER]: this.signature(timestamp, body),
          [TIMESTAMP_HEADER]: timestamp,
        },
        body,
      };
    });
  }

  /** Resolves when every queued event has been posted and every delivery has settled. */
  async idle(): Promise<void> {
    while (this.flushes.size > 0) await Promise.allSettled([...this.flushes]);
    await this.sender.idle();
    if (this.flushes.size > 0) return this.idle();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue = [];
    this.flushes.clear();
  }
}

function shuffle<T>(items: T[], r: Random): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    const t = a[i] as T;
    a[i] = a[j] as T;
    a[j] = t;
  }
  return a;
}
