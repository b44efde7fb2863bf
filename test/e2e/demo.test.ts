import { afterAll, describe, expect, it } from 'vitest';
import type { DemoResult } from '../../src/demo/run-demo.js';
import { runCli, workspace, type Workspace } from '../helpers/cli.js';

/*
 * `consentd demo --exit-after-demo` end to end, small: the four sandboxes, the daemon, a full
 * reconcile whose drift report shows disagreements found and fixed in every system, then opt-outs
 * played in each platform that must reach every other platform holding the person.
 */

let ws: Workspace | undefined;
afterAll(() => ws?.remove());

describe('consentd demo', () => {
  it('reconciles the sandboxes and propagates every played opt-out', { timeout: 90_000 }, async () => {
    ws = workspace('consentd-demo-');
    const r = await runCli(['demo', '--people', '300', '--seed', '42', '--port', '0', '--port-base', '0', '--dir', ws.path('demo'), '--plays', '4', '--exit-after-demo', '--json'], {
      timeoutMs: 80_000,
    });
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    expect(r.stdout).toMatch(/drift report/);
    const result = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as DemoResult;

    expect(result.platforms.length).toBeGreaterThanOrEqual(2);
    expect(Object.keys(result.drift).sort()).toEqual([...result.platforms].sort());
    // The seed disagrees everywhere; every disagreement is fixed, nothing failed or left.
    for (const [id, d] of Object.entries(result.drift)) {
      expect(d.found, id).toBeGreaterThan(0);
      expect(d.fixed, id).toBeGreaterThanOrEqual(d.found);
      expect(d.failed, id).toBe(0);
      expect(d.left, id).toBe(0);
    }
    // One opt-out per platform; each reached every other platform holding the person.
    expect(result.plays).toHaveLength(4);
    expect(new Set(result.plays.map((p) => p.origin)).size).toBe(Math.min(4, result.platforms.length));
    for (const p of result.plays) {
      const targets = Object.entries(p.reached);
      expect(targets.length, `${p.origin}: someone to tell`).toBeGreaterThan(0);
      for (const [t, ms] of targets) expect(ms, `${p.origin} -> ${t}`).not.toBeNull();
    }
  });
});
