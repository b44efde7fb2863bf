import { describe, expect, it } from 'vitest';
import { oneAtATimePerRecord, type PushResult } from '../../src/connectors/contract.js';
import type { Change } from '../../src/model/index.js';

const change = (recordId: string, purpose = '*'): Change => ({
  key: `${recordId}:${purpose}`,
  connectorId: 'crm',
  recordId,
  subject: `${recordId}@example.com`,
  op: 'set_consent',
  channel: 'email',
  purpose,
  target: 'denied',
  rule: 'R1-denial-sticky',
  decidedBy: 'obs-1',
  meta: {},
});

/** A push that logs when it starts and ends, and finishes when told to. */
function recorder() {
  const log: string[] = [];
  const release = new Map<string, (fail: boolean) => void>();
  const push = oneAtATimePerRecord((changes) => {
    const name = changes.map((c) => c.key).join('+');
    log.push(`start ${name}`);
    return new Promise<PushResult[]>((resolve, reject) => {
      release.set(name, (fail) => {
        log.push(`end ${name}`);
        if (fail) reject(new Error('platform down'));
        else resolve(changes.map((c) => ({ key: c.key, status: 'ok' })));
      });
    });
  });
  const finish = async (name: string, fail = false): Promise<void> => {
    await new Promise((r) => setTimeout(r, 5));
    release.get(name)?.(fail);
    await new Promise((r) => setTimeout(r, 5));
  };
  return { log, push, finish };
}

describe('oneAtATimePerRecord', () => {
  it('runs pushes on different records side by side', async () => {
    const { log, push, finish } = recorder();
    const a = push([change('a')]);
    const b = push([change('b')]);
    await new Promise((r) => setTimeout(r, 5));
    expect(log).toEqual(['start a:*', 'start b:*']);
    await finish('a:*');
    await finish('b:*');
    await Promise.all([a, b]);
  });

  it('runs pushes sharing a record one after another, in order, even when one fails', async () => {
    const { log, push, finish } = recorder();
    const first = push([change('a'), change('b')]).then(
      () => 'ok',
      (e: Error) => e.message,
    );
    const second = push([change('b', 'newsletter')]);
    const third = push([change('b', 'events'), change('c')]);
    await new Promise((r) => setTimeout(r, 5));
    expect(log).toEqual(['start a:*+b:*']);
    await finish('a:*+b:*', true);
    expect(await first).toBe('platform down');
    expect(log.slice(1)).toEqual(['end a:*+b:*', 'start b:newsletter']);
    await finish('b:newsletter');
    await finish('b:events+c:*');
    expect(log.slice(3)).toEqual(['end b:newsletter', 'start b:events+c:*', 'end b:events+c:*']);
    await expect(second).resolves.toHaveLength(1);
    await expect(third).resolves.toHaveLength(2);
  });
});
