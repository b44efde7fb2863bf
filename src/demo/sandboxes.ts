/**
 * The four platform sandboxes side by side (Salesforce, HubSpot, Mailchimp, SendGrid), seeded
 * from the shared generator, with their webhooks pointed at a consentd daemon. Used by
 * `consentd sandbox`, `consentd demo` and bench/propagate.
 */
import { createHubSpotSandbox, type HubSpotSandbox, type HubSpotSandboxOptions } from '../../connectors/hubspot/sandbox/index.js';
import { createMailchimpSandbox, DEFAULT_LISTS, type MailchimpSandbox } from '../../connectors/mailchimp/sandbox/index.js';
import { createSalesforceSandbox, type SalesforceSandbox } from '../../connectors/salesforce/sandbox/index.js';
import { createSendGridSandbox, DEFAULT_GROUPS, type SendGridSandbox } from '../../connectors/sendgrid/sandbox/index.js';
import { DEFAULT_PURPOSES, generatePeople, type SeedOptions } from '../sandbox/seed.js';
import type { SeedPerson, SeedPlatform } from '../sandbox/seed-types.js';

export const PLATFORMS: readonly SeedPlatform[] = ['salesforce', 'hubspot', 'mailchimp', 'sendgrid'];

/** Secret in the Mailchimp webhook URL (the connector's webhookToken). Sandbox only. */
export const SANDBOX_MAILCHIMP_TOKEN = 'sandbox-mailchimp-webhook-token-0000';

export interface SandboxSetOptions {
  /** People seeded (0 = empty platforms). */
  people: number;
  seed: number;
  /** Sandboxes listen on portBase .. portBase+3 (Salesforce, HubSpot, Mailchimp, SendGrid); 0 = free ports. */
  portBase?: number;
  /**
   * Base URL of the consentd daemon the webhooks go to (e.g. http://127.0.0.1:8080); none if
   * absent. Webhook paths are /webhooks/<platform> (the connector ids of connectorsYaml()).
   */
  webhooks?: string | null;
  /** Fixed "now" of the seed generator (reproducible data across days). */
  seedNow?: SeedOptions['now'];
  seedRates?: SeedOptions['rates'];
  /** HubSpot overrides (rate limits, webhook batching) for benchmarks. */
  hubspot?: Partial<HubSpotSandboxOptions>;
  /** Waits before webhook redeliveries, all platforms. */
  webhookRetryDelaysMs?: number[];
  /** SendGrid event batching window (ms). */
  sendgridBatchMs?: number;
  /**
   * Do consentd's own writes come back as webhooks? 'filtered' (default) is the setup the README
   * recommends: the Salesforce outbound message's rule leaves out the integration user's changes,
   * the Mailchimp webhook is registered without the `api` source (HubSpot's own-app events and
   * SendGrid's API writes never count). 'all': every platform sends them (echo handling under load).
   */
  echoes?: 'filtered' | 'all';
}

export interface SandboxSet {
  salesforce: SalesforceSandbox;
  hubspot: HubSpotSandbox;
  mailchimp: MailchimpSandbox;
  sendgrid: SendGridSandbox;
  /** Root URL of each platform (its /__sandbox/ control API lives there too). */
  roots: Record<SeedPlatform, string>;
  /** The `connectors:` block (YAML) of a consentd config for these sandboxes (default: all four). */
  connectorsYaml(opts?: { indent?: number; platforms?: readonly SeedPlatform[] }): string;
  /**
   * A whole consentd config (YAML) for these sandboxes. schedule: `default` (nightly full,
   * incremental every 10 min), `full` (only the nightly full: it runs at start as a catch-up),
   * `none`.
   */
  configYaml(opts: {
    storePath: string;
    port: number;
    salt?: string;
    adminToken?: string;
    logLevel?: string;
    schedule?: 'default' | 'full' | 'none';
    platforms?: readonly SeedPlatform[];
  }): string;
  /** Control action of a platform's sandbox, e.g. unsubscribe(email): as a person would do it. */
  action(platform: SeedPlatform, name: string, body: Record<string, unknown>): Promise<unknown>;
  stop(): Promise<void>;
}

const q = (s: string): string => JSON.stringify(s);

export async function startSandboxes(opts: SandboxSetOptions): Promise<SandboxSet> {
  const port = (i: number): { port?: number } => (opts.portBase ? { port: opts.portBase + i } : {});
  const retry = opts.webhookRetryDelaysMs ? { webhookRetryDelaysMs: opts.webhookRetryDelaysMs } : {};
  const target = opts.webhooks ? opts.webhooks.replace(/\/+$/, '') : null;
  const hook = <K extends string>(key: K, path: string): Partial<Record<K, string>> => (target === null ? {} : ({ [key]: `${target}${path}` } as Partial<Record<K, string>>));
  const filtered = (opts.echoes ?? 'filtered') === 'filtered';
  const salesforce = createSalesforceSandbox({ ...port(0), ...retry, ...hook('outboundMessageUrl', '/webhooks/salesforce'), outboundExcludesApiUser: filtered });
  const hubspot = createHubSpotSandbox({ ...port(1), ...retry, ...hook('webhookUrl', '/webhooks/hubspot'), ...(opts.hubspot ?? {}) });
  const mailchimp = createMailchimpSandbox({
    ...port(2),
    ...retry,
    ...hook('webhookUrl', `/webhooks/mailchimp?token=${SANDBOX_MAILCHIMP_TOKEN}`),
    ...(filtered ? { webhookSources: ['user', 'admin'] as const } : {}),
  });
  const sendgrid = createSendGridSandbox({
    ...port(3),
    ...retry,
    ...hook('eventWebhookUrl', '/webhooks/sendgrid'),
    ...(opts.sendgridBatchMs !== undefined ? { eventBatchWindowMs: opts.sendgridBatchMs } : {}),
  });
  const all = [salesforce, hubspot, mailchimp, sendgrid];
  try {
    for (const s of all) await s.start();
  } catch (err) {
    for (const s of all) await s.stop().catch(() => undefined);
    throw err;
  }

  if (opts.people > 0) {
    const gen = (): Generator<SeedPerson> =>
      generatePeople(opts.people, opts.seed, { ...(opts.seedNow !== undefined ? { now: opts.seedNow } : {}), ...(opts.seedRates ? { rates: opts.seedRates } : {}) });
    salesforce.seed(gen());
    hubspot.seed(gen());
    mailchimp.seed(gen());
    sendgrid.seed(gen());
  }

  const roots: Record<SeedPlatform, string> = {
    salesforce: salesforce.url,
    hubspot: hubspot.url,
    mailchimp: mailchimp.rootUrl,
    sendgrid: sendgrid.rootUrl,
  };

  const list = DEFAULT_LISTS[0];
  const connectorsYaml: SandboxSet['connectorsYaml'] = (o = {}) => {
    const pad = ' '.repeat(o.indent ?? 0);
    const c = salesforce.credentials;
    const wanted = new Set(o.platforms ?? PLATFORMS);
    const blocks: Record<SeedPlatform, string[]> = { salesforce: [], hubspot: [], mailchimp: [], sendgrid: [] };
    blocks.salesforce = [
      '  - id: salesforce',
      '    kind: salesforce',
      '    grants: true',
      '    settings:',
      `      loginUrl: ${q(c.loginUrl)}`,
      `      auth: { flow: password, username: ${q(c.username)}, password: ${q(c.password)}, clientId: ${q(c.clientId)}, clientSecret: ${q(c.clientSecret)} }`,
      `      purposes: { ${DEFAULT_PURPOSES.map((p) => `${p}: ${p}`).join(', ')} }`,
      `      nearRealTime: { mode: outbound_messages, organizationId: ${q(salesforce.orgId)} }`,
    ];
    blocks.hubspot = [
      '  - id: hubspot',
      '    kind: hubspot',
      '    grants: true',
      '    settings:',
      `      basePath: ${q(hubspot.url)}`,
      `      accessToken: ${q(hubspot.credentials.accessToken)}`,
      `      appSecret: ${q(hubspot.credentials.appSecret)}`,
      // consentd writes through this app: its own changes come back as webhooks and are echoes.
      `      ownAppId: ${hubspot.credentials.appId}`,
      `      subscriptions: { ${hubspot.subscriptionTypes.map((t) => `${q(t.id)}: ${t.purpose}`).join(', ')} }`,
      // The connector paces itself to the portal's limit (the sandbox's, when raised for a bench).
      ...(opts.hubspot?.tenSecondlyLimit !== undefined ? [`      limits: { tenSecondly: ${opts.hubspot.tenSecondlyLimit} }`] : []),
    ];
    blocks.mailchimp = [
      '  - id: mailchimp',
      '    kind: mailchimp',
      '    grants: true',
      '    settings:',
      `      baseUrl: ${q(mailchimp.url)}`,
      `      apiKey: ${q(mailchimp.credentials.apiKey)}`,
      `      webhookToken: ${q(SANDBOX_MAILCHIMP_TOKEN)}`,
      '      lists:',
      `        - id: ${q(list?.id ?? '')}`,
      `          purposes: { ${(list?.marketingPermissions ?? []).map((m) => `${q(m.id)}: ${m.purpose ?? 'newsletter'}`).join(', ')} }`,
    ];
    blocks.sendgrid = [
      '  - id: sendgrid',
      '    kind: sendgrid',
      '    grants: false',
      '    settings:',
      `      baseUrl: ${q(sendgrid.url)}`,
      `      apiKey: ${q(sendgrid.credentials.apiKey)}`,
      `      webhookPublicKey: ${q(sendgrid.credentials.publicKey)}`,
      `      purposes: { ${DEFAULT_GROUPS.map((g) => `${q(String(g.id))}: ${g.purpose ?? 'newsletter'}`).join(', ')} }`,
    ];
    const lines = ['connectors:', ...PLATFORMS.filter((p) => wanted.has(p)).flatMap((p) => blocks[p])];
    return lines.map((l) => pad + l).join('\n') + '\n';
  };

  const configYaml: SandboxSet['configYaml'] = (o) =>
    [
      '# consentd config for the local sandboxes (generated)',
      `salt: ${q(o.salt ?? 'sandbox-salt-0123456789abcdef')}`,
      `store: { path: ${q(o.storePath)} }`,
      `log: { level: ${o.logLevel ?? 'info'} }`,
      'purposes:',
      ...DEFAULT_PURPOSES.map((p) => `  - id: ${p}`),
      o.schedule === 'none'
        ? 'schedule: { full: null, incremental: null, reconfirm: null }'
        : o.schedule === 'full'
          ? 'schedule: { full: "0 3 * * *", incremental: null, reconfirm: null }'
          : 'schedule: { full: "0 3 * * *", incremental: "*/10 * * * *", reconfirm: null }',
      `http: { host: 127.0.0.1, port: ${o.port}, adminTokens: [${q(o.adminToken ?? 'sandbox-admin-token-0123456789')}] }`,
      'outbox: { linger: 10ms, baseDelay: 200ms, maxDelay: 30s }',
      connectorsYaml(o.platforms ? { platforms: o.platforms } : {}),
    ].join('\n');

  const action: SandboxSet['action'] = async (platform, name, body) => {
    const res = await fetch(`${roots[platform]}/__sandbox/actions/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${platform} sandbox: ${name} answered ${res.status}: ${text.slice(0, 200)}`);
    return text.length > 0 ? (JSON.parse(text) as unknown) : null;
  };

  return {
    salesforce,
    hubspot,
    mailchimp,
    sendgrid,
    roots,
    connectorsYaml,
    configYaml,
    action,
    async stop() {
      for (const s of all) await s.stop().catch(() => undefined);
    },
  };
}
