import { createHash } from 'node:crypto';
import { CallCounter } from '../../../src/sandbox/calls.js';
import { Faults, NO_FAULTS } from '../../../src/sandbox/faults.js';
import { startHttpServer, type RunningServer } from '../../../src/sandbox/http.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { WebhookSender } from '../../../src/sandbox/webhooks.js';
import type { SgContext } from './context.js';
import type { ControlDeps } from './control.js';
import { SendGridEventWebhook } from './event-webhook.js';
import { EndpointRateLimiter, type RateLimitSettings } from './rate-limit.js';
import { seedSendGrid } from './seed.js';
import { createHandler } from './server.js';
import { DEFAULT_GROUPS, SendGridState, type GroupConfig } from './state.js';

export type { GroupConfig, ListType, Entry } from './state.js';
export type { SgEvent, SgEventType } from './event-webhook.js';
export { DEFAULT_GROUPS } from './state.js';
export { SIGNATURE_HEADER, TIMESTAMP_HEADER } from './event-webhook.js';
export { seedSendGrid } from './seed.js';

export interface SendGridSandboxOptions {
  port?: number;
  /** Default: "SG." + deterministic characters. */
  apiKey?: string;
  /** Unsubscribe groups (default: Newsletter 101 (default group), Product updates 102, Events 103). */
  groups?: GroupConfig[];
  /** Where signed Event Webhook POSTs go (none when unset; settable via /__sandbox/event-webhook). */
  eventWebhookUrl?: string;
  /** Fraction of events delivered twice (in a later POST). Default 0. */
  duplicateRate?: number;
  /** Shuffle the events inside each POST. Default false. */
  outOfOrder?: boolean;
  /** Events are gathered this long into one POST (default 20 ms). */
  eventBatchWindowMs?: number;
  /** Requests per endpoint per window (default 600 per 60 s). */
  rateLimit?: Partial<RateLimitSettings>;
  faultsSeed?: number;
  /** Waits before webhook retries (default 200 ms, 1 s, 5 s). */
  webhookRetryDelaysMs?: number[];
  now?: () => number;
}

export interface SendGridSandbox {
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
  /** Base API URL ending in /v3 (empty before start). */
  readonly url: string;
  /** Root URL (control API at `${rootUrl}/__sandbox/`). */
  readonly rootUrl: string;
  /** publicKey: base64 DER (SPKI) of the P-256 key that signs the Event Webhook. */
  readonly credentials: { apiKey: string; publicKey: string };
  /** Seeds people (presence.sendgrid). Returns the number of distinct addresses. */
  seed(people: Iterable<SeedPerson>): number;
  reset(): void;
  readonly faults: Faults;
  readonly calls: CallCounter;
  /** Delivery log and idle(); `events.idle()` also waits for events not yet posted. */
  readonly webhooks: WebhookSender;
  readonly events: SendGridEventWebhook;
  readonly rateLimiter: EndpointRateLimiter;
  readonly state: SendGridState;
}

export function createSendGridSandbox(opts: SendGridSandboxOptions = {}): SendGridSandbox {
  const apiKey = opts.apiKey ?? `SG.${createHash('sha256').update('consentd-sendgrid-sandbox').digest('base64url').slice(0, 22)}.${createHash('sha256').update('secret').digest('base64url').slice(0, 43)}`;
  const state = new SendGridState(opts.groups ?? DEFAULT_GROUPS);
  const faults = new Faults(opts.faultsSeed ?? 1);
  const calls = new CallCounter();
  const sender = new WebhookSender(opts.webhookRetryDelaysMs);
  const now = opts.now ?? Date.now;
  const events = new SendGridEventWebhook(sender, {
    url: opts.eventWebhookUrl,
    duplicateRate: opts.duplicateRate ?? 0,
    outOfOrder: opts.outOfOrder ?? false,
    batchWindowMs: opts.eventBatchWindowMs ?? 20,
    seed: opts.faultsSeed ?? 7,
  });
  const limiter = new EndpointRateLimiter({ limit: opts.rateLimit?.limit ?? 600, windowMs: opts.rateLimit?.windowMs ?? 60_000 });
  const ctx: SgContext = { state, events, faults, now };
  const seed = (people: Iterable<SeedPerson>): number => seedSendGrid(state, people);
  const reset = (): void => {
    state.clear();
    calls.reset();
    faults.set(NO_FAULTS);
    limiter.reset();
    events.emitted.length = 0;
  };
  const control: ControlDeps = { ctx, calls, sender, limiter, seed, reset };
  const handler = createHandler({ ctx, calls, control, limiter, apiKey });
  let server: RunningServer | null = null;

  return {
    async start() {
      server ??= await startHttpServer(handler, opts.port === undefined ? {} : { port: opts.port });
      return { url: `${server.url}/v3` };
    },
    async stop() {
      events.stop();
      sender.stop();
      await server?.close();
      server = null;
    },
    get url() {
      return server ? `${server.url}/v3` : '';
    },
    get rootUrl() {
      return server?.url ?? '';
    },
    credentials: { apiKey, publicKey: events.publicKey },
    seed,
    reset,
    faults,
    calls,
    webhooks: sender,
    events,
    rateLimiter: limiter,
    state,
  };
}
