/**
 * Test-only connector kinds. Loaded by `consentd run` only when CONSENTD_TEST_CONNECTORS=1
 * (src/cli/run.ts daemonRegistry); in-process tests import them directly.
 *
 * kind `testhook`: a platform that only talks by webhook. POST body: a JSON array of
 * `{ id, email, at }` unsubscribe events, signed `X-Test-Signature: hex(HMAC-SHA256(secret, raw body))`.
 * Each event is an explicit (email, *) denial by this source, with the record it reveals (which
 * already says "denied", so nothing is pushed back). Pushes, if any, are appended to
 * `effectsFile` (one JSON line per change) so a test can count them.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { z } from 'zod';
import { secret } from '../../src/config/secret.js';
import { WebhookRejection, defineConnector } from '../../src/connectors/contract.js';
import type { Connector, ConnectorContext, ConnectorDefinition, WebhookEvent } from '../../src/connectors/contract.js';
import { normalizeEmail, type ObservationInput, type RecordSnapshot } from '../../src/model/index.js';

export const TEST_SIGNATURE_HEADER = 'x-test-signature';

export const testhookSettings = z.strictObject({
  secret: secret(z.string().min(8)),
  effectsFile: z.string().min(1).optional(),
  purposes: z.record(z.string(), z.string()).default({}),
});
export type TesthookSettings = z.output<typeof testhookSettings>;

export function signTestBody(secretValue: string, body: string | Buffer): string {
  return createHmac('sha256', secretValue).update(body).digest('hex');
}

export interface TestUnsubscribe {
  id: string;
  email: string;
  at: string;
  /** A privacy deletion naming only a record id (the platform already deleted the person). */
  forgetRecord?: string;
  /** The person changed address from this one to `email` (no statement of their own). */
  movedFrom?: string;
}

export function createTesthookConnector(settings: TesthookSettings, ctx: ConnectorContext): Connector {
  const effects = settings.effectsFile === undefined ? undefined : resolve(ctx.baseDir, settings.effectsFile);
  return {
    id: ctx.id,
    kind: 'testhook',
    limits: { batchSize: 100, requestsPerInterval: 1000, intervalMs: 1000, concurrency: 1 },
    capabilities: { consent: [{ channel: 'email', purpose: '*' }], suppression: [], pushGrants: false, erase: false, acceptsUnknownAddresses: false },
    // eslint-disable-next-line require-yield
    async *pull() {
      return;
    },
    async push(changes) {
      if (effects) await appendFile(effects, changes.map((c) => JSON.stringify({ key: c.key, subject: c.subject, op: c.op, target: c.target }) + '\n').join(''));
      return changes.map((c) => ({ key: c.key, status: 'ok' as const }));
    },
    check: async () => ({ ok: true, details: ['test connector'] }),
    webhook: {
      async verify(req) {
        const sig = req.headers[TEST_SIGNATURE_HEADER];
        const given = Buffer.from(typeof sig === 'string' ? sig : '', 'utf8');
        const want = Buffer.from(signTestBody(settings.secret, req.rawBody), 'utf8');
        if (given.length !== want.length || !timingSafeEqual(given, want)) throw new WebhookRejection('bad_signature', 'X-Test-Signature does not match');
        let body: unknown;
        try {
          body = JSON.parse(req.rawBody.toString('utf8'));
        } catch {
          throw new WebhookRejection('malformed', 'body is not JSON');
        }
        if (!Array.isArray(body)) throw new WebhookRejection('malformed', 'body is not an array');
        return body.map((e: unknown): WebhookEvent => {
          const ev = e as Partial<TestUnsubscribe>;
          if (typeof ev.id !== 'string' || (typeof ev.email !== 'string' && typeof ev.forgetRecord !== 'string')) throw new WebhookRejection('malformed', 'event without id or email');
          return { id: ev.id, type: 'unsubscribe', occurredAt: typeof ev.at === 'string' ? ev.at : null, payload: ev };
        });
      },
      async toObservations(events) {
        const observations: ObservationInput[] = [];
        const records: RecordSnapshot[] = [];
        const erasuresByRecord: Array<{ recordId: string; reference: string | null; statedAt: string | null }> = [];
        const addressChanges: Array<{ from: string; to: string; reference: string | null }> = [];
        for (const e of events) {
          const p = e.payload as TestUnsubscribe;
          if (typeof p.movedFrom === 'string') {
            const from = normalizeEmail(p.movedFrom);
            const to = normalizeEmail(p.email);
            if (from.ok && to.ok) addressChanges.push({ from: from.email, to: to.email, reference: `event:${e.id}` });
            continue;
          }
          if (typeof p.forgetRecord === 'string') {
            erasuresByRecord.push({ recordId: p.forgetRecord, reference: `event:${e.id}`, statedAt: e.occurredAt });
            continue;
          }
          const n = normalizeEmail(p.email);
          if (!n.ok) continue;
          observations.push({
            subject: n.email,
            source: ctx.id,
            recordId: n.email,
            kind: 'consent',
            channel: 'email',
            purpose: '*',
            state: 'denied',
            strength: 'explicit',
            statedAt: e.occurredAt,
            how: 'webhook',
            reference: `event:${e.id}`,
            evidence: 'unsubscribe link',
            reason: null,
          });
          records.push({ connectorId: ctx.id, recordId: n.email, subject: n.email, consent: { 'email:*': 'denied' }, suppressed: {}, meta: {} });
        }
        return { observations, records, erasuresByRecord, addressChanges };
      },
    },
  };
}

export const testhookConnector = defineConnector({
  kind: 'testhook',
  configSchema: testhookSettings,
  create: (settings, ctx) => createTesthookConnector(settings, ctx),
});

export const TEST_CONNECTORS: readonly ConnectorDefinition[] = [testhookConnector as ConnectorDefinition];
