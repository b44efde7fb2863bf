import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/loader.js';
import { defaultRegistry } from '../../src/connectors/registry.js';
import { tempDir, change } from '../fixtures/csv/helpers.js';

describe('config/example.yaml', () => {
  it('pulls the three example lists from copies, never touching the committed seeds', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'config'));
    cpSync('config/example.yaml', join(root, 'config/example.yaml'));
    cpSync('config/example', join(root, 'config/example'), { recursive: true });
    const registry = defaultRegistry();
    const config = loadConfig(join(root, 'config/example.yaml'), { env: {}, registry });
    expect(config.store.path).toBe(join(root, 'data/example.db'));
    expect(config.policy.grantSources).toEqual(['cli', 'api', 'crm_export', 'newsletter_tool']);

    const seeds = Object.fromEntries(config.connectors.map((c) => [c.id, readFileSync(join(root, 'config/example', `${c.id}.csv`))]));
    const summary: Record<string, { subjects: number; observations: number; rejects: number }> = {};
    for (const cc of config.connectors) {
      const c = registry.create(cc, { purposes: config.purposes.map((p) => p.id), logger: pino({ level: 'silent' }), baseDir: config.baseDir });
      expect((await c.check()).ok).toBe(true);
      const subjects = new Set<string>();
      let observations = 0;
      let rejects = 0;
      for await (const page of c.pull(null)) {
        for (const r of page.records) subjects.add(r.subject);
        observations += page.observations.length;
        rejects += page.rejects?.length ?? 0;
      }
      summary[cc.id] = { subjects: subjects.size, observations, rejects };
      expect(existsSync(join(root, 'data/example', `${cc.id}.csv`))).toBe(true);
      // A push rewrites the copy only.
      await c.push([change({ connectorId: cc.id, recordId: 'new.person@example.com', op: 'set_consent', purpose: '*', target: 'denied' })]);
      expect(readFileSync(join(root, 'config/example', `${cc.id}.csv`)).equals(seeds[cc.id] as Buffer)).toBe(true);
      expect(readFileSync(join(root, 'data/example', `${cc.id}.csv`), 'utf8')).toContain('new.person@example.com');
    }
    expect(summary).toEqual({
      crm_export: { subjects: 34, observations: 42, rejects: 2 },
      newsletter_tool: { subjects: 36, observations: 37, rejects: 2 },
      legacy_suppressions: { subjects: 26, observations: 26, rejects: 2 },
    });
  });
});
