/**
 * A faithful local Salesforce org for tests, benchmarks and rehearsals: an HTTP server on
 * 127.0.0.1 that the real jsforce talks to unchanged (OAuth 2.0 token endpoint and SOAP login,
 * REST query/queryMore, sObject Collections, describe, limits, Outbound Messages).
 */
import { CallCounter } from '../../../src/sandbox/calls.js';
import { Faults, type FaultSettings } from '../../../src/sandbox/faults.js';
import { startHttpServer, type RunningServer } from '../../../src/sandbox/http.js';
import type { SeedPerson } from '../../../src/sandbox/seed-types.js';
import { WebhookSender } from '../../../src/sandbox/webhooks.js';
import { Auth } from './auth.js';
import { Actions, inspectEmail } from './control.js';
import { makeId } from './ids.js';
import { ApiLimits } from './limits.js';
import { CursorStore } from './query.js';
import { KEY_PREFIX, type Row } from './schema.js';
import { seedPeople, type SeedCounts } from './seeding.js';
import { createHandler } from './server.js';
import { SalesforceState, type RecordView, type Table } from './state.js';
import { OutboundMessages } from './webhooks.js';

export interface SalesforceSandboxOptions {
  /** Port to listen on (default 0: a free one). */
  port?: number;
  /** Newest API version served, "59.0" by default (older versions down to 20.0 are served too). */
  apiVersion?: string;
  /** Rolling 24-hour API request allowance (Developer Edition: 15,000). */
  dailyApiLimit?: number;
  username?: string;
  password?: string;
  clientId?: string;
  clientSecret?: string;
  /** 18-char organization id (00D...). */
  orgId?: string;
  /** Access token lifetime (default 2 hours). */
  tokenTtlMs?: number;
  /** Individual, DataUsePurpose, ContactPointTypeConsent and Contact/Lead.IndividualId exist (default true). */
  privacyFeatures?: boolean;
  /** Where Outbound Messages go (none when unset; can be set later). */
  /**
   * The outbound message's workflow rule leaves out changes made by the API user (the one
   * consentd logs in as): `LastModifiedById <> <that user>`. Default false: every change is sent.
   */
  outboundExcludesApiUser?: boolean;
  outboundMessageUrl?: string;
  /** Waits before each Outbound Message retry (default: the kit's schedule). */
  webhookRetryDelaysMs?: number[];
  /** Initial fault settings. */
  faults?: Partial<FaultSettings>;
  /** Seed of the fault dice. */
  faultSeed?: number;
  /** Clock (tests): epoch ms. */
  now?: () => number;
}

export interface SalesforceCredentials {
  loginUrl: string;
  username: string;
  password: string;
  clientId: string;
  clientSecret: string;
}

/** Read access to the org's data, for tests. Values are rendered as the REST API renders them. */
export interface SalesforceInspector {
  /** The raw state (tables of rows); mutate through the API or the actions instead. */
  readonly raw: SalesforceState;
  contact(id: string): RecordView | undefined;
  lead(id: string): RecordView | undefined;
  get(type: string, id: string): RecordView | undefined;
  contactsByEmail(email: string): RecordView[];
  leadsByEmail(email: string): RecordView[];
  /** Contacts, Leads, their Individuals and consents for one address. */
  byEmail(email: string): ReturnType<typeof inspectEmail>;
  individuals(): RecordView[];
  consents(): RecordView[];
  purposes(): RecordView[];
  /** Live (not deleted) rows per object. */
  counts(): Record<string, number>;
}

export interface SalesforceSandbox {
  start(): Promise<{ url: string }>;
  stop(): Promise<void>;
  /** Base URL (login and instance URL); throws before start(). */
  readonly url: string;
  readonly credentials: SalesforceCredentials;
  readonly orgId: string;
  readonly userId: string;
  seed(people: Iterable<SeedPerson>): SeedCounts;
  /** Empties the org, open cursors, the API usage and the call counts (sessions stay valid). */
  reset(): void;
  readonly faults: Faults;
  readonly calls: CallCounter;
  readonly webhooks: WebhookSender;
  readonly limits: ApiLimits;
  readonly state: SalesforceInspector;
  /** What people do outside the API (unsubscribe link, form opt-in, bounce, erasure request). */
  readonly actions: Actions;
  /** Ends every session: the next API call answers 401 INVALID_SESSION_ID. */
  expireSessions(): void;
  /** Successful logins and token grants so far. */
  readonly logins: number;
  setOutboundMessageUrl(url: string | null): void;
}

export function createSalesforceSandbox(opts: SalesforceSandboxOptions = {}): SalesforceSandbox {
  const now = opts.now ?? Date.now;
  const apiVersion = opts.apiVersion ?? '59.0';
  const orgId = opts.orgId ?? makeId(KEY_PREFIX.Organization, 4_242_424);
  const userId = makeId(KEY_PREFIX.User, 1_000_001);
  const credentials = {
    username: opts.username ?? 'admin@consentd.sandbox',
    password: opts.password ?? 'sandbox-password',
    clientId: opts.clientId ?? '3MVG9consentdSandboxClientId.0000000000000000000000000000000000000',
    clientSecret: opts.clientSecret ?? 'CONSENTDSANDBOXSECRET0000000000000000000000000000',
  };
  const state = new SalesforceState({ orgId, userId, privacyFeatures: opts.privacyFeatures ?? true, now });
  const faults = new Faults(opts.faultSeed ?? 1);
  if (opts.faults) faults.set(opts.faults);
  const calls = new CallCounter();
  const webhooks = new WebhookSender(opts.webhookRetryDelaysMs);
  const limits = new ApiLimits(opts.dailyApiLimit ?? 15_000, now);
  const auth = new Auth({ ...credentials, orgId, userId, tokenTtlMs: opts.tokenTtlMs ?? 2 * 3600_000 }, now);
  const cursors = new CursorStore(now);
  let server: RunningServer | null = null;
  const baseUrl = (): string => {
    if (!server) throw new Error('the Salesforce sandbox is not started');
    return server.url;
  };
  const outbound = new OutboundMessages({
    url: opts.outboundMessageUrl ?? null,
    orgId,
    baseUrl: () => server?.url ?? null,
    version: apiVersion,
    sender: webhooks,
    excludeModifiedBy: opts.outboundExcludesApiUser === true ? userId : null,
  });
  state.onChange((table, row) => outbound.queue(table, row));
  const actions = new Actions(state, () => outbound.flush());

  const seed = (people: Iterable<SeedPerson>): SeedCounts => seedPeople(state, people);
  const reset = (): void => {
    state.reset();
    cursors.clear();
    limits.setUsed(0);
    calls.reset();
  };

  const viewOf = (t: Table | undefined, row: Row | undefined): RecordView | undefined => (t && row ? state.view(t, row) : undefined);
  const all = (name: string): RecordView[] => {
    const t = state.tables.get(name);
    return t ? t.rows.filter((r) => !r.$deleted).map((r) => state.view(t, r)) : [];
  };
  const inspector: SalesforceInspector = {
    raw: state,
    contact: (id) => viewOf(state.contacts, state.contacts.get(id)),
    lead: (id) => viewOf(state.leads, state.leads.get(id)),
    get: (type, id) => {
      const t = state.table(type);
      return viewOf(t, t?.get(id));
    },
    contactsByEmail: (email) => state.contacts.byEmail(email).filter((r) => !r.$deleted).map((r) => state.view(state.contacts, r)),
    leadsByEmail: (email) => state.leads.byEmail(email).filter((r) => !r.$deleted).map((r) => state.view(state.leads, r)),
    byEmail: (email) => inspectEmail(state, email),
    individuals: () => all('Individual'),
    consents: () => all('ContactPointTypeConsent'),
    purposes: () => all('DataUsePurpose'),
    counts: () => Object.fromEntries([...state.tables].map(([name, t]) => [name, t.liveCount])),
  };

  const handler = createHandler({ state, actions, auth, limits, faults, calls, webhooks, outbound, cursors, apiVersion, baseUrl, seed, reset });

  return {
    async start() {
      if (!server) server = await startHttpServer(handler, opts.port === undefined ? {} : { port: opts.port });
      return { url: server.url };
    },
    async stop() {
      webhooks.stop();
      const s = server;
      server = null;
      if (s) await s.close();
    },
    get url() {
      return baseUrl();
    },
    get credentials() {
      return { loginUrl: baseUrl(), ...credentials };
    },
    orgId,
    userId,
    seed,
    reset,
    faults,
    calls,
    webhooks,
    limits,
    state: inspector,
    actions,
    expireSessions: () => auth.expireAll(),
    get logins() {
      return auth.grants;
    },
    setOutboundMessageUrl: (url) => outbound.setUrl(url),
  };
}

export type { SeedCounts } from './seeding.js';
export type { ActionResult, Actions } from './control.js';
export type { RecordView } from './state.js';
