import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/loader.js';
import { configSecrets, redactedConfig } from '../../src/config/schema.js';
import { defaultRegistry } from '../../src/connectors/registry.js';

/*
 * config/consentd.example.yaml is the commented reference of every key: it must parse with the
 * registered kinds, show one entry per kind, and every secret it takes from the environment
 * must be marked secret by the schema (redacted from logs and `consentd check`). Only
 * loadConfig runs: the paths the reference names need not exist, and no connector is created.
 */

const FILE = 'config/consentd.example.yaml';

const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const sendgridPublicKey = publicKey.export({ format: 'der', type: 'spki' }).toString('base64');

/** Secret values, one per variable the reference reads for a secret setting. */
const SECRETS = {
  CONSENTD_SALT: 'example-salt-0123456789abcdef',
  CONSENTD_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
  SALESFORCE_PASSWORD: 'sf-password-and-security-token',
  SALESFORCE_CLIENT_SECRET: 'sf-consumer-secret-0123456789',
  HUBSPOT_TOKEN: 'pat-eu1-00000000-1111-2222-3333-444444444444',
  HUBSPOT_APP_SECRET: 'hs-app-secret-0123456789abcdef',
  MAILCHIMP_API_KEY: '0123456789abcdef0123456789abcdef-us14',
  MAILCHIMP_WEBHOOK_TOKEN: 'mc-webhook-token-0123456789abcdef',
  SENDGRID_API_KEY: 'SG.example-key-id.example-key-secret-0123456789',
} as const;

/** Variables the reference reads that are not secrets. */
const PLAIN = {
  SALESFORCE_CLIENT_ID: '3MVG9example-consumer-key',
  SENDGRID_WEBHOOK_PUBLIC_KEY: sendgridPublicKey,
} as const;

const env = { ...SECRETS, ...PLAIN };

/** ${VAR} / ${VAR:-default} references outside comments. */
function referencedVariables(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const code = line.replace(/(^|\s)#.*$/, '');
    for (const m of code.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}/g)) names.add(m[1] as string);
  }
  return names;
}

describe('config/consentd.example.yaml', () => {
  const registry = defaultRegistry();

  it('sets every variable it references in this test (none is forgotten)', () => {
    const names = referencedVariables(readFileSync(FILE, 'utf8'));
    expect([...names].sort()).toEqual(Object.keys(env).sort());
  });

  it('parses with the default registry', () => {
    const config = loadConfig(FILE, { env, registry });
    expect(config.salt).toBe(SECRETS.CONSENTD_SALT);
    expect(config.http.adminTokens).toEqual([SECRETS.CONSENTD_ADMIN_TOKEN]);
  });

  it('documents one connector of every registered kind', () => {
    const config = loadConfig(FILE, { env, registry });
    const kinds = config.connectors.map((c) => c.kind);
    for (const kind of registry.kinds()) expect(kinds, `kind ${kind}`).toContain(kind);
    expect(new Set(kinds).size).toBe(kinds.length);
  });

  it('maps only declared purposes, by every kind', () => {
    const config = loadConfig(FILE, { env, registry });
    const declared = new Set(['*', ...config.purposes.map((p) => p.id)]);
    const mapped = (settings: unknown): string[] => {
      const s = settings as Record<string, unknown>;
      const maps: unknown[] = [s['purposes'], s['subscriptions'], ...((s['lists'] as Array<Record<string, unknown>> | undefined) ?? []).map((l) => l['purposes'])];
      return maps.flatMap((m) => (m && typeof m === 'object' ? Object.values(m as Record<string, string>) : []));
    };
    for (const c of config.connectors) {
      const purposes = mapped(c.settings);
      expect(purposes.length, `${c.kind} maps purposes`).toBeGreaterThan(0);
      for (const p of purposes) expect(declared.has(p), `${c.kind} maps ${p}`).toBe(true);
    }
  });

  it('marks every secret it reads from the environment (and only those)', () => {
    const config = loadConfig(FILE, { env, registry });
    const secrets = configSecrets(config, registry);
    for (const [name, value] of Object.entries(SECRETS)) expect(secrets, name).toContain(value);
    for (const [name, value] of Object.entries(PLAIN)) expect(secrets, name).not.toContain(value);

    const redacted = JSON.stringify(redactedConfig(config, registry));
    for (const [name, value] of Object.entries(SECRETS)) expect(redacted.includes(value), name).toBe(false);
  });
});
