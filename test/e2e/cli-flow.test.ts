import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { csvConfig, runCli, workspace, type Workspace } from '../helpers/cli.js';

const HEADER = 'email,channel,purpose,state,stated_at,evidence\n';

describe('e2e: consentd apply, plan, export, erase through the CLI', () => {
  let ws: Workspace;
  let config: string;
  beforeAll(() => {
    ws = workspace();
    ws.write('crm.csv', HEADER + 'alice@example.com,email,newsletter,subscribed,2024-01-01,web form 17\nbob@example.com,email,newsletter,subscribed,2024-01-01,web form 18\n');
    ws.write('esp.csv', HEADER + 'alice@example.com,email,news,unsubscribed,2024-03-01,\nbob@example.com,email,news,subscribed,2024-01-02,\n');
    config = ws.write('consentd.yaml', csvConfig({ connectors: [{ id: 'crm', file: 'crm.csv', grants: true }, { id: 'esp', file: 'esp.csv', purposes: { news: 'newsletter' } }] }));
  });
  afterAll(() => ws.remove());

  it('apply fixes every system; a second plan is empty; export streams the ledger', async () => {
    const o = await runCli(['--config', config, 'optout', 'bob@example.com', '--evidence', 'letter']);
    expect(o.code).toBe(0);
    const a = await runCli(['--config', config, 'apply']);
    expect(a.stderr).toBe('');
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/system\s+disagreements found\s+fixed\s+retried\s+failed\s+still queued/);
    expect(a.stdout).toMatch(/^crm\s+\d+\s+\d+\s+0\s+0\s+0$/m);
    expect(readFileSync(ws.path('esp.csv'), 'utf8')).toMatch(/bob@example\.com,email,news,unsubscribed/);
    expect(readFileSync(ws.path('crm.csv'), 'utf8')).toMatch(/alice@example\.com,email,newsletter,unsubscribed/);

    const p = await runCli(['--config', config, 'plan']);
    expect(p.code).toBe(0);
    expect(p.stdout).toContain('no changes: every system agrees');

    const x = await runCli(['--config', config, 'export', '--format', 'json']);
    expect(x.code).toBe(0);
    const lines = x.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; source: string });
    expect(lines.length).toBeGreaterThanOrEqual(5);
    expect(lines.every((l) => l.type === 'observation')).toBe(true);
    expect(lines.some((l) => l.source === 'cli')).toBe(true);

    const nf = await runCli(['--config', config, 'dead-letters', '--replay', '999']);
    expect(nf.code).toBe(6);
  });

  it('erase: forgotten in the store and the files; explain says so', async () => {
    const r = await runCli(['--config', config, 'erase', 'alice@example.com']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('erased from the store');
    const a = await runCli(['--config', config, 'apply', '--no-pull']);
    expect(a.code).toBe(0);
    expect(readFileSync(ws.path('crm.csv'), 'utf8')).not.toContain('alice@');
    expect(readFileSync(ws.path('esp.csv'), 'utf8')).not.toContain('alice@');
    const e = await runCli(['--config', config, 'explain', 'alice@example.com']);
    expect(e.stdout).toContain('erased: only a salted-hash tombstone');
    const x = await runCli(['--config', config, 'export', '--format', 'csv']);
    expect(x.stdout).not.toContain('alice@');
    expect(x.stdout).toMatch(/^erasure,.*,cli,/m);
  });
});
