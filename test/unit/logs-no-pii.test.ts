import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli, workspace, type Workspace } from '../helpers/cli.js';
import { signTestBody, TEST_SIGNATURE_HEADER } from '../helpers/test-connectors.js';

/*
 * The daemon's logs at default settings (log.pii false, level info) hold no email address and no
 * secret from the config, whatever happens: a catch-up full pull with a malformed row, webhook
 * intake (good and badly signed), admin opt-out / explain / bad requests with a bearer token,
 * pushes to the other systems, a failing connector check, and a graceful shutdown.
 * `consentd run` runs as a child; its stderr (the JSON log) is captured.
 */

const SALT = 'salt-5f1d9c3e7a2b4c6d8e0f';
const ADMIN = 'admin-token-b7e4c2a9d1f3';
const HOOK_SECRET = 'hook-secret-9a8b7c6d5e4f';
const EMAILS = ['Ann.Lee@Example.com', 'bob.stone@example.org', 'carol+tag@example.net', 'dave@example.com'];

let ws: Workspace | undefined;
afterAll(() => ws?.remove());

describe('logs: no personal data, no secrets', () => {
  it('a daemon session logs neither addresses nor secrets', { timeout: 30_000 }, async () => {
    ws = workspace('consentd-pii-');
    ws.write(
      'crm.csv',
      'email,channel,purpose,state,stated_at,evidence\n' +
        `${EMAILS[3]},email,newsletter,subscribed,2024-01-01,form signed by ${EMAILS[3]}\n` +
        `not-an-address@@${EMAILS[3]},email,newsletter,subscribed,2024-01-01,\n` +
        `${EMAILS[3]},email,newsletter,subscribed,not-a-date-${EMAILS[3]},\n`,
    );
    ws.write('esp.csv', 'email,channel,purpose,state,stated_at,evidence\n');
    const config = ws.write(
      'consentd.yaml',
      [
        `salt: "${SALT}"`,
        'store: { path: ./data/consentd.db }',
        'purposes: [{ id: newsletter }]',
        // The full run is overdue at start (never ran): the catch-up pulls the CSV lists.
        'schedule: { full: "0 3 * * *", incremental: null, reconfirm: null }',
        `http: { host: 127.0.0.1, port: 0, adminTokens: ["${ADMIN}"] }`,
        'outbox: { linger: 5ms }',
        'connectors:',
        '  - { id: crm, kind: csv, grants: true, settings: { path: crm.csv, purposes: { newsletter: newsletter } } }',
        '  - { id: esp, kind: csv, settings: { path: esp.csv } }',
        '  - { id: gone, kind: csv, settings: { path: missing/gone.csv } }',
        `  - { id: hook, kind: testhook, settings: { secret: "${HOOK_SECRET}" } }`,
      ].join('\n') + '\n',
    );

    const child = spawnCli(['--config', config, 'run'], { env: { CONSENTD_TEST_CONNECTORS: '1' } });
    let stderr = '';
    let stdout = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no start: ${stderr}`)), 15_000);
      child.stdout?.setEncoding('utf8').on('data', (d: string) => {
        stdout += d;
        const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(stdout);
        if (m) {
          clearTimeout(t);
          resolve(m[1] as string);
        }
      });
    });
    const closed = new Promise<number | null>((r) => child.on('close', (code) => r(code)));

    const hook = async (events: unknown, secret = HOOK_SECRET): Promise<number> => {
      const body = JSON.stringify(events);
      const res = await fetch(`${url}/webhooks/hook`, { method: 'POST', headers: { 'content-type': 'application/json', [TEST_SIGNATURE_HEADER]: signTestBody(secret, body) }, body });
      await res.arrayBuffer();
      return res.status;
    };
    const admin = async (path: string, body?: unknown, token = ADMIN): Promise<number> => {
      const res = await fetch(`${url}${path}`, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      await res.arrayBuffer();
      return res.status;
    };

    expect(await hook([{ id: 'e1', email: EMAILS[0], at: '2025-01-01T00:00:00Z' }])).toBe(200);
    expect(await hook([{ id: 'e1', email: EMAILS[0], at: '2025-01-01T00:00:00Z' }])).toBe(200); // duplicate
    expect(await hook([{ id: 'e2', email: EMAILS[1], at: '2025-01-01T00:00:00Z' }], 'wrong-secret')).toBe(401);
    expect(await hook({ not: 'an array', email: EMAILS[1] })).toBe(400);
    expect(await admin('/v1/optouts', { email: EMAILS[2], evidence: `phone call from ${EMAILS[2]}` })).toBe(202);
    expect(await admin('/v1/optouts', { email: EMAILS[2], purpose: 'no_such_purpose' })).toBe(400);
    expect(await admin('/v1/optouts', { email: 'not an address' })).toBe(400);
    expect(await admin(`/v1/subjects/${encodeURIComponent(EMAILS[0] as string)}`)).toBe(200);
    expect(await admin('/v1/optouts', { email: EMAILS[1] }, 'wrong-token-0123456789')).toBe(401);

    // Wait for the pushes: both opt-outs in the esp list.
    const { readFileSync } = await import('node:fs');
    const deadline = Date.now() + 10_000;
    while (!/ann\.lee@example\.com[\s\S]*carol\+tag@example\.net|carol\+tag@example\.net[\s\S]*ann\.lee@example\.com/.test(readFileSync(ws.path('esp.csv'), 'utf8'))) {
      if (Date.now() > deadline) throw new Error(`no push: ${stderr.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    expect(await closed).toBe(0);

    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    // The session did produce the lines that could leak.
    const text = lines.join('\n');
    expect(text).toMatch(/"msg":"row rejected"/);
    expect(text).toMatch(/"msg":"webhook rejected"/);
    expect(text).toMatch(/"msg":"connector check failed"|"msg":"connector check threw"/);
    expect(text).toMatch(/"msg":"shutdown complete"/);
    for (const l of lines) expect(() => JSON.parse(l) as unknown).not.toThrow();

    const emailLike = /[\w.+-]+@[\w-]+(\.[\w-]+)*\.[a-z]{2,}/i;
    const leaks = lines.filter((l) => emailLike.test(l));
    expect(leaks).toEqual([]);
    for (const secret of [SALT, ADMIN, HOOK_SECRET]) expect(lines.filter((l) => l.includes(secret))).toEqual([]);
    for (const e of EMAILS) {
      const local = e.split('@')[0] as string;
      expect(lines.filter((l) => l.toLowerCase().includes(local.toLowerCase()))).toEqual([]);
    }
  });
});
