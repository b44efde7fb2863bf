/**
 * HubSpot sandbox: a loopback HTTP server that @hubspot/api-client 13.5 talks to unchanged
 * (`new Client({ accessToken, basePath: sandbox.url })`). See README.md next to this file.
 */
import { CallCounter } from '../../../src/sandbox/calls.js';
import { Faults } from '../../../src/sandbox/faults.js';
import { startHttpServer, type RunningServer } from '../../../src/sandbox/http.js';
import { seededRandom } from '../../../src/sandbox/random.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { WebhookSender } from '../../../src/sandbox/webhooks.js';
import { commPrefRoutes } from './comm-prefs.js';
import { contactRoutes } from './contacts.js';
import { SandboxActions, type ControlHost } from './control.js';
import { RateLimiter } from './rate-limit.js';
import { seedPeople } from './seed.js';
import { createHandler } from './server.js';
import { HubSpotState, ID_BASE, type ChangeCtx, type StatusView, type SubscriptionType, type WideView } from './state.js';
import type { Core } from './types.js';
import { HubSpotWebhookEmitter, type HubSpotEvent } from './webhooks.js';

export { signV3, type HubSpotEvent } from './webhooks.js';
export type { StatusView, WideView, SubscriptionType, SubState, LegalBasis, ChangeCtx } from './state.js';
export type { ActionOptions } from './control.js';
export { ID_BASE } from './state.js';

export interface SubscriptionTypeInput {
  id: string;
  name: string;
  description?: string;
  /** Canonical purpose seeds map onto (default: the name in snake_case, e.g. "product_updates"). */
  purpose?: string;
}

export interface HubSpotSandboxOptions {
  port?: number;
  accessToken?: string;
  appSecret?: string;
  portalId?: number;
  appId?: number;
  webhookUrl?: string;
  subscriptionTypes?: SubscriptionTypeInput[];
  commPrefsV4?: boolean;
  tenSecondlyLimit?: number;
  dailyLimit?: number;
  searchPerSecond?: number;
  faultsSeed?: number;
  /** Webhook batching window (ms). Default 50. */
  webhookBatchMs?: number;
  /** Waits before each webhook retry. Default [200, 1000, 5000] (HubSpot's schedule, shortened). */
  webhookRetryDelaysMs?: number[];
  /** Properties with a contact.propertyChange subscription ('*' suffix = prefix). */
  webhookProperties?: string[];
  /** Extra writable custom contact properties. */
  extraProperties?: string[];
}

export const DEFAULT_SUBSCRIPTION_TYPES: SubscriptionTypeInput[] = [
  { id: '1001', name: 'Newsletter', description: 'Our monthly newsletter', purpose: 'newsletter' },
  { id: '1002', name: 'Product Updates', description: 'News about product changes', purpose: 'product_updates' },
  { id: '1003', name: 'Events', description: 'Invitations to events and webinars', purpose: 'events' },
];

export const DEFAULT_WEBHOOK_PROPERTIES = [
  'email',
  'firstname',
  'lastname',
  'hs_email_optout',
  'hs_email_optout_*',
  'hs_email_hard_bounce_reason_enum',
  'hs_email_bad_address',
  'hs_email_quarantined',
];

/** A contact as the sandbox holds it (every property). */
export interface ContactView {
  id: string;
  archived: boolean;
  createdAt: string;
  updatedAt: string;
  properties: Record<string, string | null>;
}

export interface HubSpotSandbox {
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
  /** Base URL (after start()). */
  readonly url: string;
  readonly credentials: { accessToken: string; appSecret: string; portalId: number; appId: number };
  readonly subscriptionTypes: readonly SubscriptionType[];
  seed(people: Iterable<SeedPerson>): number;
  reset(): void;
  faults: Faults;
  calls: CallCounter;
  webhooks: WebhookSender;
  /** Queued webhook events are sent now; resolves when every delivery (with retries) settled. */
  flushWebhooks(): Promise<void>;
  setWebhookUrl(url: string | undefined): void;
  /** Every webhook event produced (last 10,000), attemptNumber 0. */
  readonly webhookEvents: readonly HubSpotEvent[];
  actions: SandboxActions;
  state: {
    /** Active contacts with this email (case-insensitive; duplicates included). */
    contactsByEmail(email: string): ContactView[];
    contact(id: string): ContactView | null;
    statuses(email: string): StatusView[];
    wideStatus(email: string): WideView;
    count(): number;
    /** Ids with a seeded privacy deletion request not yet processed. */
    pendingPrivacyDeletions(): string[];
    /** Raw state, for benchmarks and deep tests. */
    raw: HubSpotState;
  };
}

function snake(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '');
}

export function createHubSpotSandbox(opts: HubSpotSandboxOptions = {}): HubSpotSandbox {
  const accessToken = opts.accessToken ?? 'pat-na1-sandbox-0000-0000-000000000000';
  const appSecret = opts.appSecret ?? 'sandbox-app-secret';
  const portalId = opts.portalId ?? 62515;
  const appId = opts.appId ?? 424242;
  const created = new Date('2020-01-01T00:00:00.000Z').toISOString();
  const types: SubscriptionType[] = (opts.subscriptionTypes ?? DEFAULT_SUBSCRIPTION_TYPES).map((t) => ({
    id: t.id,
    name: t.name,
    description: t.description ?? t.name,
    purpose: t.purpose ?? snake(t.name),
    createdAt: created,
  }));
  const state = new HubSpotState(types, opts.extraProperties ?? []);
  const faults = new Faults(opts.faultsSeed ?? 1);
  const calls = new CallCounter();
  const sender = new WebhookSender(opts.webhookRetryDelaysMs ?? [200, 1000, 5000]);
  const emitter = new HubSpotWebhookEmitter({
    sender,
    appSecret,
    portalId,
    appId,
    url: opts.webhookUrl,
    batchMs: opts.webhookBatchMs ?? 50,
    properties: opts.webhookProperties ?? DEFAULT_WEBHOOK_PROPERTIES,
  });
  state.onEvent = (e) => emitter.handle(e);
  const limiter = new RateLimiter({
    tenSecondlyLimit: opts.tenSecondlyLimit ?? 100,
    dailyLimit: opts.dailyLimit ?? 250_000,
    searchPerSecond: opts.searchPerSecond ?? 5,
  });
  let server: RunningServer | null = null;
  let baseUrl = '';
  const apiCtx: ChangeCtx = { changeSource: 'API', sourceId: String(appId) };
  const core: Core = {
    state,
    faults,
    portalId,
    appId,
    commPrefsV4: opts.commPrefsV4 ?? true,
    apiCtx,
    searchCache: new Map(),
    url: () => baseUrl,
  };
  const actions = new SandboxActions(core);

  const view = (slot: number): ContactView => {
    const properties: Record<string, string | null> = {};
    for (const n of [...state.readOnly, ...state.writable]) properties[n] = state.prop(slot, n);
    return {
      id: String(slot + ID_BASE),
      archived: state.isArchived(slot),
      createdAt: new Date(state.createdAtOf(slot)).toISOString(),
      updatedAt: new Date(state.updatedAtOf(slot)).toISOString(),
      properties,
    };
  };

  const seed = (people: Iterable<SeedPerson>): number => seedPeople(state, people);
  const reset = (): void => {
    state.clear();
    core.searchCache.clear();
    calls.reset();
    limiter.reset();
    emitter.reset();
  };
  const control: ControlHost = {
    core,
    actions,
    seed,
    reset,
    calls,
    faults,
    setWebhookUrl: (url) => {
      emitter.url = url;
    },
    webhookLog: () => ({ emitted: emitter.emitted, deliveries: sender.log }),
    flushWebhooks: () => emitter.idle(),
  };
  const handler = createHandler({ core, routes: [...contactRoutes, ...commPrefRoutes], accessToken, limiter, calls, control, random: seededRandom((opts.faultsSeed ?? 1) + 7) });

  return {
    async start() {
      if (!server) {
        server = await startHttpServer(handler, opts.port !== undefined ? { port: opts.port } : {});
        baseUrl = server.url;
      }
      return { url: baseUrl };
    },
    async stop() {
      emitter.stop();
      sender.stop();
      const s = server;
      server = null;
      if (s) await s.close();
    },
    get url() {
      return baseUrl;
    },
    credentials: { accessToken, appSecret, portalId, appId },
    subscriptionTypes: types,
    seed,
    reset,
    faults,
    calls,
    webhooks: sender,
    flushWebhooks: () => emitter.idle(),
    setWebhookUrl: (url) => {
      emitter.url = url;
    },
    get webhookEvents() {
      return emitter.emitted;
    },
    actions,
    state: {
      contactsByEmail: (email) => state.slotsByEmail(email).map(view),
      contact: (id) => {
        const s = state.slotOfId(id, true);
        return s < 0 ? null : view(s);
      },
      statuses: (email) => state.statuses(email),
      wideStatus: (email) => state.wideStatus(email),
      count: () => state.activeCount,
      pendingPrivacyDeletions: () => [...state.pendingPrivacyDeletion].map((s) => String(s + ID_BASE)),
      raw: state,
    },
  };
}
