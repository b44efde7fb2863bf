import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csvConfig, runCli, workspace, type Workspace } from '../helpers/cli.js';

const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';

describe('e2e: the consentd CLI', () => {
  let ws: Workspace;
  let config: string;
  beforeAll(() => {
    ws = workspace();
    ws.write('crm.csv', HEADER + 'alice@example.com,email,newsletter,subscribed,2024-01-01,web form 17\nbob@example.com,email,newsletter,subscribed,2024-01-01,web form 18\n');
    ws.write('esp.csv', HEADER + 'alice@example.com,email,news,unsubscribed,2024-03-01,\nbob@example.com,email,news,subscribed,2024-01-02,\n');
    config = ws.write('consentd.yaml', csvConfig({ connectors: [{ id: 'crm', file: 'crm.csv', grants: true }, { id: 'esp', file: 'esp.csv', purposes: { news: 'newsletter' } }] }));
  });
  afterAll(() => ws.remove());

  it('an invalid config: precise error on stderr, exit 2, nothing written', async () => {
    const bad = workspace();
    try {
      const file = bad.write(
        'consentd.yaml',
        ['salt: short', 'store: { path: ./data/consentd.db }', 'purposes:', '  - id: newsletter', 'connectors:', '  - id: crm', '    kind: csv', '    setings: { path: crm.csv }', ''].join('\n'),
      );
      const r = await runCli(['--config', file, 'pull']);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`invalid config ${file}`);
      expect(r.stderr).toMatch(new RegExp(`${file}:1:\\d+ salt: salt must be at least 16 characters`));
      expect(r.stderr).toMatch(/:8:\d+ connectors\[0\]\.setings: unknown key/);
      expect(existsSync(bad.path('data'))).toBe(false);
      expect(existsSync(bad.path('data/consentd.db'))).toBe(false);

      const missing = await runCli(['--config', bad.path('nope.yaml'), 'status']);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toMatch(/nope\.yaml.*cannot read the file/s);
    } finally {
      bad.remove();
    }
  });

  it('a bad email: exit 64, naming the input and the reason', async () => {
    for (const cmd of ['explain', 'optout']) {
      const r = await runCli(['--config', config, cmd, 'alice.example.com']);
      expect(r.code).toBe(64);
      expect(r.stderr).toContain('invalid email "alice.example.com": email has no @');
    }
    const grant = await runCli(['--config', config, 'grant', 'alice@example.com', '--purpose', 'newsletter']);
    expect(grant.code).toBe(64);
    expect(grant.stderr).toMatch(/--evidence/);
  });

  it('explain shows every observation, the winner and the rule', async () => {
    const pull = await runCli(['--config', config, 'pull']);
    expect(pull.stderr).toBe('');
    expect(pull.code).toBe(0);
    expect(pull.stdout).toMatch(/crm\s+1\s+2\s+2\s+2\s+0\s+ok/);

    const r = await runCli(['--config', config, 'explain', ' Alice@Example.com ']);
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^alice@example\.com$/m);
    expect(out).toContain('observations (2):');
    expect(out).toMatch(/2024-01-01T00:00:00\.000Z\s+crm\s+email:newsletter\s+granted \(explicit\).*evidence "web form 17"/);
    expect(out).toMatch(/2024-03-01T00:00:00\.000Z\s+esp\s+email:newsletter\s+denied \(explicit\)/);
    expect(out).toMatch(/email:newsletter\s+DENIED\s+rule R1-denial-sticky/);
    expect(out).toContain('Denied: a denial stands until a later explicit grant');
    expect(out).toMatch(/winner: 2024-03-01T00:00:00\.000Z\s+esp\s+email:newsletter\s+denied/);

    const j = await runCli(['--config', config, 'explain', 'alice@example.com', '--json']);
    expect(j.code).toBe(0);
    const doc = JSON.parse(j.stdout) as { observations: unknown[]; explanation: { permissions: Array<{ purpose: string; rule: string; decidedBy: { source: string } | null }> } };
    expect(doc.observations).toHaveLength(2);
    const p = doc.explanation.permissions.find((x) => x.purpose === 'newsletter');
    expect(p?.rule).toBe('R1-denial-sticky');
    expect(p?.decidedBy?.source).toBe('esp');
  });

  it('optout then explain: the statement is recorded, decides, and is queued high', async () => {
    const r = await runCli(['--config', config, 'optout', 'BOB@example.com', '--evidence', 'phone call 2024-06-01']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('opt-out bob@example.com: recorded');
    expect(r.stdout).toMatch(/queued \(high priority\): crm=\d+ esp=\d+/);

    const e = await runCli(['--config', config, 'explain', 'bob@example.com']);
    expect(e.code).toBe(0);
    expect(e.stdout).toContain('observations (3):');
    expect(e.stdout).toMatch(/cli\s+email:\*\s+denied \(explicit\)\s+via manual.*evidence "phone call 2024-06-01"/);
    expect(e.stdout).toMatch(/email:newsletter\s+DENIED\s+rule R4-scope-all-purposes/);
    expect(e.stdout).toMatch(/winner: \S+\s+cli\s+email:\*\s+denied/);

    const s = await runCli(['--config', config, 'status', '--json']);
    expect(s.code).toBe(0);
    const st = JSON.parse(s.stdout) as { stats: { outbox: { pending: number } }; depth: Record<string, number> };
    expect(st.stats.outbox.pending).toBeGreaterThan(0);
  });
});
