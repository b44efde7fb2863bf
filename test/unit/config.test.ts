import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/loader.js';
import { configSecrets, redactedConfig } from '../../src/config/schema.js';
import { secret } from '../../src/config/secret.js';
import { defineConnector } from '../../src/connectors/contract.js';
import type { ConnectorDefinition } from '../../src/connectors/contract.js';
import { createRegistry, defaultRegistry } from '../../src/connectors/registry.js';
import { csvConnector } from '../../connectors/csv/index.js';

const apiKind = defineConnector({
  kind: 'fakeapi',
  configSchema: z.strictObject({
    apiKey: secret(),
    oauth: z.strictObject({ clientId: z.string(), clientSecret: secret() }).optional(),
    purposes: z.record(z.string(), z.string()).default({}),
  }),
  create: () => {
    throw new Error('not used');
  },
});
const registry = createRegistry([csvConnector as ConnectorDefinition, apiKind as ConnectorDefinition]);
const env = { CONSENTD_SALT: 'a-very-long-test-salt-value' };

const MINIMAL = `
salt: \${CONSENTD_SALT}
connectors:
  - id: legacy_list
    kind: csv
    settings: { path: lists/suppress.csv }
`;

function problemsOf(text: string, e: NodeJS.ProcessEnv = env): ConfigError {
  try {
    parseConfig(text, { file: '/etc/consentd/consentd.yaml', env: e, registry });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('fills defaults, converts durations, resolves paths against the config directory, freezes', () => {
    const c = parseConfig(MINIMAL, { file: '/etc/consentd/consentd.yaml', env, registry });
    expect(c.store.path).toBe('/etc/consentd/data/consentd.db');
    expect(c.baseDir).toBe('/etc/consentd');
    expect(c.file).toBe('/etc/consentd/consentd.yaml');
    expect(c.salt).toBe(env.CONSENTD_SALT);
    expect(c.log).toEqual({ level: 'info', pii: false });
    expect(c.policy).toEqual({ clockSkewMs: 300_000, reconfirmAfterMs: 730 * 86_400_000, revokeStale: false, grantSources: ['cli', 'api'] });
    expect(c.purposes).toEqual([]);
    expect(c.schedule).toEqual({ full: '0 3 * * *', incremental: '*/10 * * * *', reconfirm: '0 6 * * 1', timezone: 'UTC' });
    expect(c.http).toEqual({ host: '0.0.0.0', port: 8080, adminTokens: [], bodyLimitBytes: 1_048_576, publicUrl: null });
    expect(c.outbox).toEqual({ maxAttempts: 8, baseDelayMs: 1_000, maxDelayMs: 300_000, lingerMs: 50 });
    expect(c.connectors).toEqual([
      {
        id: 'legacy_list',
        kind: 'csv',
        grants: false,
        enabled: true,
        limits: {},
        settings: { path: 'lists/suppress.csv', delimiter: ',', purposes: {}, channels: ['email'], batchSize: 50_000, pageSize: 5_000 },
      },
    ]);
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.connectors[0]?.settings)).toBe(true);
    expect(() => {
      (c.http as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('parses a full document; grantSources = policy.grantSources ∪ connectors with grants', () => {
    const c = parseConfig(
      `
store: { path: /var/lib/consentd/db.sqlite }
salt: "\${CONSENTD_SALT}"
log: { level: debug, pii: true }
policy: { clockSkew: 30s, reconfirmAfter: null, revokeStale: true, grantSources: [cli] }
purposes:
  - { id: newsletter, description: Weekly news }
  - { id: product_updates }
connectors:
  - id: crm
    kind: fakeapi
    grants: true
    limits: { batchSize: 10, concurrency: 2 }
    settings: { apiKey: "\${API_KEY}", purposes: { "Newsletter": newsletter } }
  - id: legacy-list
    kind: csv
    enabled: false
    settings:
      path: x.csv
      purposes: { weekly: newsletter, all: "*" }
schedule: { full: "0 2 * * *", incremental: null, reconfirm: "0 6 * * 1", timezone: Europe/Paris }
http:
  host: 127.0.0.1
  port: \${PORT:-9090}
  adminTokens: ["\${ADMIN_TOKEN}"]
  publicUrl: "https://consent.example.com"
outbox: { maxAttempts: 3, baseDelay: 500ms, maxDelay: 1m, linger: 0 }
`,
      { file: '/c/consentd.yaml', env: { ...env, API_KEY: 'api-key-123456', ADMIN_TOKEN: 'admin-token-0123456789' }, registry },
    );
    expect(c.store.path).toBe('/var/lib/consentd/db.sqlite');
    expect(c.log).toEqual({ level: 'debug', pii: true });
    expect(c.policy).toEqual({ clockSkewMs: 30_000, reconfirmAfterMs: null, revokeStale: true, grantSources: ['cli', 'crm'] });
    expect(c.purposes).toEqual([
      { id: 'newsletter', description: 'Weekly news' },
      { id: 'product_updates', description: '' },
    ]);
    expect(c.connectors[0]).toMatchObject({ id: 'crm', grants: true, limits: { batchSize: 10, concurrency: 2 }, settings: { apiKey: 'api-key-123456' } });
    expect(c.connectors[1]).toMatchObject({ id: 'legacy-list', enabled: false });
    expect(c.schedule.incremental).toBeNull();
    expect(c.http).toEqual({ host: '127.0.0.1', port: 9090, adminTokens: ['admin-token-0123456789'], bodyLimitBytes: 1_048_576, publicUrl: 'https://consent.example.com' });
    expect(c.outbox).toEqual({ maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 60_000, lingerMs: 0 });

    expect(configSecrets(c, registry).sort()).toEqual(['a-very-long-test-salt-value', 'admin-token-0123456789', 'api-key-123456']);
    const red = redactedConfig(c, registry);
    expect(red.salt).toBe('[REDACTED]');
    expect(red.http.adminTokens).toEqual(['[REDACTED]']);
    expect(red.connectors[0]?.settings).toMatchObject({ apiKey: '[REDACTED]' });
    expect(JSON.stringify(red)).not.toMatch(/api-key-123456|admin-token-0123456789|a-very-long-test-salt/);
  });

  it('substitutes ${VAR:-default} (unset or empty), $${ as a literal, and re-types plain scalars', () => {
    const c = parseConfig(
      `
salt: \${CONSENTD_SALT}
log:
  level: \${LEVEL:-warn}
  pii: \${PII:-false}
http:
  port: \${PORT}
  host: "h-\${HOST:-x}-$\${NOT_A_VAR}"
connectors: [ { id: a, kind: csv, settings: { path: "\${DATA_DIR:-/data}/a.csv" } } ]
`,
      { file: '/c/c.yaml', env: { ...env, PORT: '1234', PII: 'true', DATA_DIR: '' }, registry },
    );
    expect(c.log).toEqual({ level: 'warn', pii: true });
    expect(c.http.port).toBe(1234);
    expect(c.http.host).toBe('h-x-${NOT_A_VAR}');
    expect((c.connectors[0]?.settings as { path: string }).path).toBe('/data/a.csv');
  });

  it('names every missing variable with its line', () => {
    const e = problemsOf(`salt: \${NO_SALT}\nconnectors:\n  - { id: a, kind: csv, settings: { path: "\${NO_DIR}/x.csv" } }\n`, {});
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.problems).toEqual([
      expect.objectContaining({ path: 'salt', line: 1, column: 7, message: expect.stringContaining('NO_SALT is not set') }),
      expect.objectContaining({ path: 'connectors[0].settings.path', line: 3, message: expect.stringContaining('NO_DIR is not set') }),
    ]);
    expect(e.message).toContain('/etc/consentd/consentd.yaml:1:7 salt: environment variable NO_SALT is not set');
  });

  it('reports YAML syntax errors with line and column', () => {
    const e = problemsOf(`salt: x\nconnectors:\n  - id: a\n   kind: csv\n`);
    expect(e.problems[0]).toMatchObject({ line: expect.any(Number), message: expect.stringMatching(/^YAML syntax/) });
    expect(e.message).toMatch(/consentd\.yaml:\d+:\d+/);
    // One mistake, one problem (the parser's cascade is cut).
    expect(problemsOf(`salt: x\nhttp: { port: \${PORT} }\nconnectors: []\n`).problems.length).toBeLessThanOrEqual(5);
    const dup = problemsOf(`salt: x\nsalt: y\nconnectors: []\n`);
    expect(dup.problems[0]).toMatchObject({ line: 2, message: expect.stringMatching(/YAML syntax.*[Uu]nique/) });
  });

  it('reports every schema problem with its path, line:column and what was expected', () => {
    const e = problemsOf(`
salt: short
log: { levle: info }
policy: { clockSkew: soon }
purposes:
  - { id: newsletter }
  - { id: newsletter }
  - { id: "Bad Id" }
connectors:
  - id: crm
    kind: csv
    settings: { pth: x.csv }
  - id: crm
    kind: csv
    settings: { path: y.csv, purposes: { weekly: events } }
  - id: other
    kind: salesforce
    settings: {}
http: { port: 99999 }
schedule: { full: "every night", timezone: Mars/Olympus }
`);
    const byPath = Object.fromEntries(e.problems.map((p) => [p.path, p]));
    expect(byPath['salt']).toMatchObject({ line: 2, column: 7, message: expect.stringContaining('at least 16') });
    expect(byPath['log.levle']).toMatchObject({ line: 3, column: 8, message: expect.stringContaining('unknown key') });
    expect(byPath['policy.clockSkew']).toMatchObject({ line: 4, message: expect.stringContaining('invalid duration "soon"') });
    expect(byPath['purposes[1].id']).toMatchObject({ line: 7, message: expect.stringContaining('declared twice') });
    expect(byPath['purposes[2].id']).toMatchObject({ line: 8, message: expect.stringContaining('lower_snake_case') });
    expect(byPath['connectors[0].settings.pth']).toMatchObject({ line: 12, message: expect.stringContaining('unknown key') });
    expect(byPath['connectors[0].settings.path']).toMatchObject({ line: 12, message: expect.stringContaining('is required') });
    expect(byPath['connectors[1].id']).toMatchObject({ line: 13, message: expect.stringContaining('"crm" is used twice') });
    expect(byPath['connectors[1].settings.purposes.weekly']).toMatchObject({ line: 15, message: expect.stringContaining('"events", which is not declared') });
    expect(byPath['connectors[2].kind']).toMatchObject({ line: 17, message: 'unknown connector kind "salesforce"; registered kinds: csv, fakeapi' });
    expect(byPath['http.port']).toMatchObject({ line: 19 });
    expect(byPath['schedule.full']).toMatchObject({ message: expect.stringContaining('cron') });
    expect(byPath['schedule.timezone']).toMatchObject({ message: expect.stringContaining('IANA') });
    expect(e.problems.length).toBeGreaterThanOrEqual(13);
  });

  it('checks grantSources, reserved ids and requires connectors', () => {
    const e = problemsOf(`salt: 0123456789abcdef\npolicy: { grantSources: [cli, nowhere] }\nconnectors: [ { id: api, kind: csv, settings: { path: a.csv } } ]\n`);
    expect(e.problems.map((p) => p.path).sort()).toEqual(['connectors[0].id', 'policy.grantSources[1]']);
    const none = problemsOf(`salt: 0123456789abcdef\n`);
    expect(none.problems).toEqual([expect.objectContaining({ path: 'connectors', message: expect.stringContaining('is required') })]);
  });

  it('reads a file from disk and names it in errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'consentd-config-'));
    const file = join(dir, 'consentd.yaml');
    writeFileSync(file, MINIMAL);
    const c = loadConfig(file, { env, registry: defaultRegistry() });
    expect(c.store.path).toBe(join(dir, 'data/consentd.db'));
    expect(() => loadConfig(join(dir, 'missing.yaml'), { env, registry })).toThrow(/missing\.yaml.*cannot read/s);
  });

  it('the shipped example configs are valid', () => {
    // config/consentd.example.yaml needs every platform's secrets: test/unit/config-example.test.ts.
    for (const f of ['config/example.yaml']) {
      const c = loadConfig(f, { env: { CONSENTD_SALT: 'example-salt-for-the-test' }, registry: defaultRegistry() });
      expect(c.connectors.length).toBeGreaterThan(0);
    }
  });
});
