import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { z } from 'zod';
import { defineConnector } from '../../src/connectors/contract.js';
import type { Connector, ConnectorDefinition } from '../../src/connectors/contract.js';
import { createRegistry, defaultRegistry, UnknownConnectorKindError } from '../../src/connectors/registry.js';

class PrivateConnector implements Connector {
  readonly kind = 'priv';
  readonly limits = { batchSize: 100, requestsPerInterval: 10, intervalMs: 1000, concurrency: 4 };
  readonly capabilities = { consent: [], suppression: [], pushGrants: false, erase: false, acceptsUnknownAddresses: false };
  #secret = 'from-private-field';
  constructor(readonly id: string) {}
  async *pull() {}
  push() {
    return Promise.resolve([]);
  }
  check() {
    return Promise.resolve({ ok: true, details: [this.#secret] });
  }
}
const priv = defineConnector({ kind: 'priv', configSchema: z.strictObject({}), create: (_s, ctx) => new PrivateConnector(ctx.id) });
const ctx = { purposes: [], logger: pino({ level: 'silent' }), baseDir: '/tmp' };

describe('connector registry', () => {
  it('registers the built-in kinds', () => {
    const r = defaultRegistry();
    expect([...r.kinds()].sort()).toEqual(['csv', 'hubspot', 'mailchimp', 'salesforce', 'sendgrid']);
    expect(r.get('csv')?.kind).toBe('csv');
    expect(r.get('nope')).toBeUndefined();
  });

  it('creates connectors with the config id and applies limit overrides', async () => {
    const r = createRegistry([priv as ConnectorDefinition]);
    const plain = r.create({ id: 'p1', kind: 'priv', grants: false, enabled: true, limits: {}, settings: {} }, ctx);
    expect(plain).toBeInstanceOf(PrivateConnector);
    expect(plain.id).toBe('p1');
    const tuned = r.create({ id: 'p2', kind: 'priv', grants: false, enabled: true, limits: { batchSize: 5, concurrency: 1 }, settings: {} }, ctx);
    expect(tuned.limits).toEqual({ batchSize: 5, requestsPerInterval: 10, intervalMs: 1000, concurrency: 1 });
    expect(tuned.id).toBe('p2');
    expect(await tuned.check()).toEqual({ ok: true, details: ['from-private-field'] });
  });

  it('refuses unknown kinds and double registration', () => {
    const r = createRegistry([priv as ConnectorDefinition]);
    expect(() => r.create({ id: 'x', kind: 'hubspot', grants: false, enabled: true, limits: {}, settings: {} }, ctx)).toThrow(UnknownConnectorKindError);
    expect(() => createRegistry([priv as ConnectorDefinition, priv as ConnectorDefinition])).toThrow(/registered twice/);
  });
});
