import { createHash } from 'node:crypto';
import { CallCounter } from '../../../src/sandbox/calls.js';
import { Faults, NO_FAULTS } from '../../../src/sandbox/faults.js';
import { startHttpServer, type RunningServer } from '../../../src/sandbox/http.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { WebhookSender } from '../../../src/sandbox/webhooks.js';
import { dispatch } from './api.js';
import { dcOf } from './auth.js';
import { BatchRunner } from './batches.js';
import type { McContext } from './context.js';
import type { ControlDeps } from './control.js';
import { seedMailchimp } from './seed.js';
import { createHandler } from './server.js';
import { DEFAULT_LISTS, MailchimpState, type ListConfig, type WebhookSource } from './state.js';
import { MailchimpWebhooks } from './webhooks.js';

export type { ListConfig, MarketingPermissionConfig, InterestCategoryConfig, Member, MemberStatus, WebhookSource, WebhookEventType } from './state.js';
export { subscriberHash, DEFAULT_LISTS } from './state.js';
export { seedMailchimp } from './seed.js';

export interface MailchimpSandboxOptions {
  port?: number;
  /** Default: 32 hex digits + "-us14". The suffix is the data centre. */
  apiKey?: string;
  /** Default: one list with marketing permissions Newsletter / Product updates / Events. */
  lists?: ListConfig[];
  /** A webhook (the secret-token URL) registered on every list at start, without validation. */
  webhookUrl?: string;
  /** Sources of changes that webhookUrl receives (default all: user, admin, api). */
  webhookSources?: WebhookSource[];
  /** Simultaneous requests allowed per API key (Mailchimp: 10). */
  maxConnections?: number;
  faultsSeed?: number;
  /** Waits before webhook retries (default 200 ms, 1 s, 5 s). stop() ends deliveries for good. */
  webhookRetryDelaysMs?: number[];
  /** Clock, for tests (default Date.now). */
  now?: () => number;
}

export interface MailchimpSandbox {
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
  /** Base API URL ending in /3.0 (empty before start). */
  readonly url: string;
  /** Root URL (control API at `${rootUrl}/__sandbox/`). */
  readonly rootUrl: string;
  readonly credentials: { apiKey: string; dc: string };
  /** Seeds people (presence.mailchimp) into a list (default: the first). Returns members created. */
  seed(people: Iterable<SeedPerson>, opts?: { listId?: string }): number;
  reset(): void;
  readonly faults: Faults;
  readonly calls: CallCounter;
  readonly webhooks: WebhookSender;
  /** Webhooks emitted (type, source, body), before delivery. */
  readonly sentWebhooks: MailchimpWebhooks['sent'];
  readonly state: MailchimpState;
  readonly batches: BatchRunner;
}

export function createMailchimpSandbox(opts: MailchimpSandboxOptions = {}): MailchimpSandbox {
  const apiKey = opts.apiKey ?? `${createHash('md5').update('consentd-mailchimp-sandbox').digest('hex')}-us14`;
  const state = new MailchimpState(opts.lists ?? DEFAULT_LISTS);
  const faults = new Faults(opts.faultsSeed ?? 1);
  const calls = new CallCounter();
  const sender = new WebhookSender(opts.webhookRetryDelaysMs);
  const now = opts.now ?? Date.now;
  let server: RunningServer | null = null;
  const hooks = new MailchimpWebhooks(sender, now);
  const ctx: McContext = { state, hooks, faults, now, rootUrl: () => server?.url ?? '' };
  const batches: BatchRunner = new BatchRunner(ctx, (req) => dispatch(ctx, batches, req, 'api'));

  const registerDefaultHooks = (): void => {
    if (!opts.webhookUrl) return;
    for (const list of state.lists.values()) {
      list.webhooks = list.webhooks.filter((h) => h.url !== opts.webhookUrl);
      hooks.register(list, opts.webhookUrl, undefined, opts.webhookSources);
    }
  };
  registerDefaultHooks();

  const seed = (people: Iterable<SeedPerson>, listId?: string): number => {
    const list = state.list(listId);
    if (!list) throw new Error(`no list ${String(listId)}`);
    return seedMailchimp(state, list, people);
  };
  const reset = (): void => {
    state.clear();
    batches.clear();
    calls.reset();
    faults.set(NO_FAULTS);
    hooks.sent.length = 0;
  };
  const control: ControlDeps = { ctx, batches, calls, sender, seed, reset, defaultWebhookUrl: opts.webhookUrl };
  const handler = createHandler({ ctx, batches, calls, control, apiKey, maxConnections: opts.maxConnections ?? 10 });

  return {
    async start() {
      server ??= await startHttpServer(handler, opts.port === undefined ? {} : { port: opts.port });
      return { url: `${server.url}/3.0` };
    },
    async stop() {
      sender.stop();
      await batches.idle();
      await server?.close();
      server = null;
    },
    get url() {
      return server ? `${server.url}/3.0` : '';
    },
    get rootUrl() {
      return server?.url ?? '';
    },
    credentials: { apiKey, dc: dcOf(apiKey) },
    seed: (people, o) => seed(people, o?.listId),
    reset,
    faults,
    calls,
    webhooks: sender,
    sentWebhooks: hooks.sent,
    state,
    batches,
  };
}
