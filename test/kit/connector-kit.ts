/**
 * The shared connector test kit (faros "one kit every connector runs" habit): the same bar for
 * every connector, run against its sandbox through the real SDK.
 *
 * Adopting it for a connector:
 *   runConnectorKit({ name: 'mailchimp', setup: async () => harness });
 * where the harness (KitHarness below) starts the platform's sandbox, builds the connector
 * against it (and a second one with a wrong credential), and translates the sandbox into the
 * kit's neutral terms: seed(people) replaces the sandbox's data with SeedPerson values,
 * readState(email) answers what the platform now says in canonical scope keys ("email:*"),
 * act('optout', email) plays "the person clicked unsubscribe", captureWebhook(email) returns a
 * real signed delivery the sandbox sent to a local listener. Platform specifics stay in the
 * harness; nothing here names a platform. Keep seeds small (a few hundred people).
 *
 * Blocks: (1) check, (2) full pull, (3) incremental pull, (4) push efficiency, (5) partial
 * failure, (6) 429 storm through a retry loop (src/engine/retry.ts classifier), (7) webhook
 * verification, (8) erase.
 *
 * No block is ever skipped. Where platforms honestly differ, the harness declares how, and the
 * block asserts what is true of that kind of platform:
 * - pullGrantsAllScope (block 2): whether the platform records (email, *) opt-ins;
 * - webhookAuth (block 7): what authenticates a delivery (signed body, secret URL token,
 *   organization id, or no webhook at all).
 * Block 6 needs no declaration: it is made deterministic for every platform (see there).
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Connector, PullPage, PushResult, Scope, WebhookRequest } from '../../src/connectors/contract.js';
import { WebhookRejection } from '../../src/connectors/contract.js';
import { classifyError } from '../../src/engine/retry.js';
import { mustNormalizeEmail } from '../../src/model/email.js';
import { ALL_PURPOSES, changeKey, scopeKey, type Change, type ConsentState, type RecordSnapshot } from '../../src/model/types.js';
import type { FaultSettings } from '../../src/sandbox/faults.js';
import type { SeedPerson, SeedPlatform } from '../../src/sandbox/seed-types.js';

/** What the platform says about one address, in canonical terms. */
export interface KitState {
  /** At least one record holds the address. */
  exists: boolean;
  /** scopeKey -> state, for the scopes the platform expresses. */
  consent: Record<string, ConsentState>;
  /** channel -> suppressed. */
  suppressed: Record<string, boolean>;
}

export interface KitSandbox {
  /** Fault injection (src/sandbox/faults.ts settings); reset() restores no faults. */
  setFaults(patch: Partial<FaultSettings>): void;
  resetFaults(): void;
  /** API calls the sandbox answered since resetCalls(). */
  calls(): number;
  resetCalls(): void;
  readState(email: string): Promise<KitState>;
  /** Replaces every record with these people. */
  seed(people: SeedPerson[]): Promise<void>;
  /** Something a person does on the platform. */
  act(action: 'optout', email: string): Promise<void>;
}

export interface KitHarness {
  connector: Connector;
  /** A connector to the same sandbox with a wrong credential. */
  badCredentials(): Connector;
  sandbox: KitSandbox;
  /** The platform's key in SeedPerson.presence. */
  platform: SeedPlatform;
  /** People present in this platform (deterministic). */
  people(count: number): SeedPerson[];
  /** Records a full pull must yield for these people (default: one per presence email). */
  expectedRecords?(people: SeedPerson[]): number;
  /** Push efficiency bar: changes one API call carries, and calls one such batch needs. */
  pushBatch: { max: number; callsPerBatch: number };
  /** The scope denials are pushed on (default email:*). */
  denyScope?: Scope;
  /** Plays act('optout', email) with a local listener and returns the signed delivery it got. */
  captureWebhook(email: string): Promise<WebhookRequest>;
  /** Re-signs a request after the kit changed its body (signed-body: lets the kit test body validation). */
  resignWebhook?(req: WebhookRequest): WebhookRequest;
  /** The signature covers a timestamp (stale deliveries are refused). signed-body only. */
  webhookHasTimestamp: boolean;
  /**
   * What authenticates a webhook delivery (block 7; default 'signed-body'):
   * - 'signed-body': a signature over the raw body (HubSpot v3, SendGrid ECDSA): a body changed by
   *   one byte is refused, a stale timestamp too (webhookHasTimestamp), malformed bodies re-signed
   *   with resignWebhook are refused;
   * - 'url-token': nothing is signed; a secret token in the URL is the credential (Mailchimp): a
   *   wrong token (forgeWebhook) is refused 401 whatever the method, the platform's GET URL
   *   validation yields no events, malformed bodies on the right URL are refused;
   * - 'org-id': nothing is signed; the body names the sending organization, which must be the
   *   configured one (Salesforce Outbound Messages): a body naming another one (forgeWebhook) is
   *   refused 401, malformed bodies are refused;
   * - 'none': the connector has no webhook (block 7 asserts there is none).
   * In every mode but 'none' a real delivery is accepted and translated, and a replay yields the
   * same event ids.
   */
  webhookAuth?: 'signed-body' | 'url-token' | 'org-id' | 'none';
  /**
   * A forged variant of a real delivery that the platform's authentication must refuse
   * (url-token: a wrong token in the URL; org-id: another organization in the body). Required for
   * url-token and org-id; signed-body defaults to the same body plus one trailing space.
   */
  forgeWebhook?(req: WebhookRequest): WebhookRequest;
  /**
   * Bodies the connector must refuse as malformed (400), given the real delivery's body; they are
   * sent on the delivery's URL and headers, re-signed with resignWebhook in signed-body mode.
   * Default: three JSON bodies that are not a JSON event array of at most 100 events (the
   * signed-body platforms' shape).
   */
  malformedWebhookBodies?(deliveredBody: string): string[];
  /**
   * Whether a pull may state (email, *) granted (block 2; default false). false: no (email, *)
   * grant at all (absence is not consent). true (the platform records opt-ins to the whole
   * channel, e.g. Mailchimp's subscribed members): every explicit (email, *) grant is a dated
   * opt-in (statedAt and evidence), any other is implicit (policy rule 2 reads it as unknown), and
   * the seed yields at least one dated opt-in.
   */
  pullGrantsAllScope?: boolean;
  /** Largest number of records one pull page may hold. */
  maxPageRecords: number;
  close(): Promise<void>;
}

export interface KitOptions {
  name: string;
  setup(): Promise<KitHarness>;
  /** People seeded for most blocks (default 250). */
  seedCount?: number;
}

export async function pullAll(connector: Connector, cursor: string | null): Promise<PullPage[]> {
  const pages: PullPage[] = [];
  for await (const p of connector.pull(cursor)) pages.push(p);
  return pages;
}

export function lastCursor(pages: PullPage[]): string | null {
  let c: string | null = null;
  for (const p of pages) if (p.cursor !== null) c = p.cursor;
  return c;
}

/** A change of one record, keyed as the planner keys it. */
export function kitChange(r: RecordSnapshot, body: Pick<Change, 'op' | 'channel' | 'purpose' | 'target'> & Partial<Pick<Change, 'rule' | 'decidedBy'>>): Change {
  const c: Omit<Change, 'key'> = {
    connectorId: r.connectorId,
    recordId: r.recordId,
    subject: r.subject,
    op: body.op,
    channel: body.channel,
    purpose: body.purpose,
    target: body.target,
    rule: body.rule ?? (body.target === 'denied' ? 'R1-denial-sticky' : null),
    decidedBy: body.decidedBy ?? 'kit-observation',
    meta: r.meta,
  };
  return { key: changeKey(c), ...c };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface RetryRun {
  /** oks per change key. */
  ok: Map<string, number>;
  failed: PushResult[];
  rounds: number;
  /** Changes sent back for another round (a 'retry' result, or a retryable error thrown for its batch). */
  retries: number;
}

/**
 * Pushes until every change is ok (engine classifier, waits capped for tests); counts oks per
 * key. onRound(n) runs before round n (1-based), e.g. to change the sandbox's faults.
 */
export async function pushWithRetries(connector: Connector, changes: Change[], opts: { maxRounds?: number; maxWaitMs?: number; onRound?: (round: number) => void } = {}): Promise<RetryRun> {
  const ok = new Map<string, number>();
  const failed: PushResult[] = [];
  let pending = changes;
  let rounds = 0;
  let retries = 0;
  while (pending.length > 0 && rounds < (opts.maxRounds ?? 40)) {
    rounds++;
    opts.onRound?.(rounds);
    const next: Change[] = [];
    let wait = 0;
    for (let i = 0; i < pending.length; i += connector.limits.batchSize) {
      const batch = pending.slice(i, i + connector.limits.batchSize);
      let results: PushResult[];
      try {
        results = await connector.push(batch);
      } catch (e) {
        const v = classifyError(e);
        if (!v.retry) throw e;
        next.push(...batch);
        wait = Math.max(wait, v.waitMs ?? 0);
        continue;
      }
      const byKey = new Map(batch.map((c) => [c.key, c] as const));
      for (const r of results) {
        const c = byKey.get(r.key);
        if (!c) throw new Error(`push answered an unknown key ${r.key}`);
        if (r.status === 'ok') ok.set(r.key, (ok.get(r.key) ?? 0) + 1);
        else {
          const v = classifyError(r);
          if (v.retry) {
            next.push(c);
            wait = Math.max(wait, v.waitMs ?? 0);
          } else failed.push(r);
        }
      }
    }
    retries += next.length;
    pending = next;
    if (pending.length > 0) await sleep(Math.min(Math.max(wait, 5), opts.maxWaitMs ?? 25));
  }
  return { ok, failed, rounds, retries };
}

function records(pages: PullPage[]): RecordSnapshot[] {
  return pages.flatMap((p) => p.records);
}

export function runConnectorKit(opts: KitOptions): void {
  const count = opts.seedCount ?? 250;

  describe(`connector kit: ${opts.name}`, () => {
    let h: KitHarness;
    let people: SeedPerson[];
    let deny: Scope;
    const present = (p: SeedPerson): boolean => p.presence[h.platform] !== undefined;

    /** Records of a fresh full pull that the deny scope does not already deny (one per subject). */
    async function undenied(n: number): Promise<RecordSnapshot[]> {
      const all = records(await pullAll(h.connector, null));
      const seen = new Set<string>();
      const out: RecordSnapshot[] = [];
      for (const r of all) {
        if (seen.has(r.subject) || r.consent[scopeKey(deny.channel, deny.purpose)] === 'denied') continue;
        seen.add(r.subject);
        out.push(r);
        if (out.length === n) break;
      }
      return out;
    }

    const denial = (r: RecordSnapshot): Change => kitChange(r, { op: 'set_consent', channel: deny.channel, purpose: deny.purpose, target: 'denied' });

    beforeAll(async () => {
      h = await opts.setup();
      deny = h.denyScope ?? { channel: 'email', purpose: ALL_PURPOSES };
      people = h.people(count);
    });
    afterAll(async () => {
      await h.close();
    });

    describe('(1) check', () => {
      it('passes with good credentials and fails with bad ones', async () => {
        const good = await h.connector.check();
        expect(good.ok, good.details.join('\n')).toBe(true);
        expect(good.details.length).toBeGreaterThan(0);
        const badConnector = h.badCredentials();
        const bad = await badConnector.check();
        expect(bad.ok).toBe(false);
        expect(bad.details.join('\n')).not.toBe('');
        await badConnector.close?.();
      });
    });

    describe('(2) full pull', () => {
      it('yields every seeded record, maps denials, bounds pages', async () => {
        await h.sandbox.seed(people);
        const pages = await pullAll(h.connector, null);
        expect(pages.length).toBeGreaterThan(1);
        for (const p of pages) expect(p.records.length).toBeLessThanOrEqual(h.maxPageRecords);
        const recs = records(pages);
        const expected = h.expectedRecords ? h.expectedRecords(people) : people.reduce((n, p) => n + (p.presence[h.platform]?.emails.length ?? 0), 0);
        expect(recs.length).toBe(expected);
        expect(new Set(recs.map((r) => r.recordId)).size).toBe(recs.length);
        expect(lastCursor(pages)).not.toBeNull();
        const obs = pages.flatMap((p) => p.observations);
        const optedOut = people.filter((p) => present(p) && p.presence[h.platform]?.optedOut === true);
        expect(optedOut.length).toBeGreaterThan(0);
        for (const p of optedOut) {
          const subject = mustNormalizeEmail(p.email);
          expect(obs.some((o) => o.subject === subject && o.kind === 'consent' && o.channel === 'email' && o.purpose === ALL_PURPOSES && o.state === 'denied' && o.strength === 'explicit'), subject).toBe(true);
          expect(recs.filter((r) => r.subject === subject).every((r) => r.consent[scopeKey('email', ALL_PURPOSES)] === 'denied')).toBe(true);
        }
        // Absence is not consent: explicit grants carry a time.
        for (const o of obs) if (o.state === 'granted' && o.strength === 'explicit') expect(o.statedAt).not.toBeNull();
        const wideGrants = obs.filter((o) => o.kind === 'consent' && o.channel === 'email' && o.purpose === ALL_PURPOSES && o.state === 'granted');
        if (h.pullGrantsAllScope === true) {
          // The platform records opt-ins to the whole channel: each one is dated and evidenced; a
          // grant without that (an import, an admin add) is implicit, which rule 2 reads as unknown.
          for (const o of wideGrants) {
            if (o.strength !== 'explicit') {
              expect(o.strength, o.subject).toBe('implicit');
              continue;
            }
            expect(o.statedAt, o.subject).not.toBeNull();
            expect(Number.isNaN(Date.parse(o.statedAt ?? '')), o.subject).toBe(false);
            expect(o.evidence ?? '', o.subject).not.toBe('');
          }
          expect(wideGrants.some((o) => o.strength === 'explicit')).toBe(true);
        } else {
          // Nobody is granted (email, *) by a flag.
          expect(wideGrants).toEqual([]);
        }
      });
    });

    describe('(3) incremental pull', () => {
      it('returns only the changed record and an advancing cursor', async () => {
        await h.sandbox.seed(people);
        const full = await pullAll(h.connector, null);
        const c0 = lastCursor(full);
        expect(c0).not.toBeNull();
        const target = records(full).find((r) => r.consent[scopeKey('email', ALL_PURPOSES)] !== 'denied');
        expect(target).toBeDefined();
        const subject = (target as RecordSnapshot).subject;
        await sleep(5);
        await h.sandbox.act('optout', subject);
        const inc = await pullAll(h.connector, c0);
        const recs = records(inc);
        expect(recs.length).toBeGreaterThan(0);
        expect(recs.every((r) => r.subject === subject)).toBe(true);
        expect(inc.flatMap((p) => p.observations).some((o) => o.subject === subject && o.purpose === ALL_PURPOSES && o.state === 'denied')).toBe(true);
        const c1 = lastCursor(inc);
        expect(c1).not.toBeNull();
        expect(c1).not.toBe(c0);
        const again = records(await pullAll(h.connector, c1));
        expect(again.filter((r) => r.subject !== subject)).toEqual([]);
      });
    });

    describe('(4) push efficiency', () => {
      it('applies N denials within ceil(N / batch max) x calls-per-batch calls', async () => {
        await h.sandbox.seed(people);
        const targets = await undenied(150);
        expect(targets.length).toBe(150);
        const changes = targets.map(denial);
        h.sandbox.resetCalls();
        const results: PushResult[] = [];
        for (let i = 0; i < changes.length; i += h.connector.limits.batchSize) results.push(...(await h.connector.push(changes.slice(i, i + h.connector.limits.batchSize))));
        const calls = h.sandbox.calls();
        expect(results.map((r) => r.key)).toEqual(changes.map((c) => c.key));
        expect(results.filter((r) => r.status !== 'ok')).toEqual([]);
        expect(calls).toBeLessThanOrEqual(Math.ceil(changes.length / h.pushBatch.max) * h.pushBatch.callsPerBatch);
        for (const r of targets) expect((await h.sandbox.readState(r.subject)).consent[scopeKey(deny.channel, deny.purpose)]).toBe('denied');
        // Pushing the same denials again is harmless.
        const again = await h.connector.push(changes.slice(0, 10));
        expect(again.every((r) => r.status === 'ok')).toBe(true);
      });
    });

    describe('(5) partial failure', () => {
      it('answers one result per key, mixing ok and retry, losing none', async () => {
        await h.sandbox.seed(people);
        const targets = await undenied(80);
        const changes = targets.map(denial);
        h.sandbox.setFaults({ partialFailureRate: 0.3 });
        let results: PushResult[];
        try {
          results = await h.connector.push(changes);
        } finally {
          h.sandbox.resetFaults();
        }
        expect(results.map((r) => r.key).sort()).toEqual(changes.map((c) => c.key).sort());
        const ok = results.filter((r) => r.status === 'ok');
        const notOk = results.filter((r) => r.status !== 'ok');
        expect(ok.length).toBeGreaterThan(0);
        expect(notOk.length).toBeGreaterThan(0);
        for (const r of notOk) expect(r.status === 'retry' || r.status === 'failed').toBe(true);
        const bySubject = new Map(changes.map((c) => [c.key, c.subject] as const));
        for (const r of ok) expect((await h.sandbox.readState(bySubject.get(r.key) as string)).consent[scopeKey(deny.channel, deny.purpose)]).toBe('denied');
        // The retries then go through.
        const rest = changes.filter((c) => notOk.some((r) => r.key === c.key && r.status === 'retry'));
        const second = await pushWithRetries(h.connector, rest);
        expect(second.failed).toEqual([]);
        expect(second.ok.size).toBe(rest.length);
      });
    });

    describe('(6) 429 storm', () => {
      /*
       * Deterministic by construction: in round 1 every API call is answered 429
       * (rateLimitRate 1), so every change must come back for another round (a 'retry' result or a
       * retryable error; connectors that retry inside give up within the round, their attempts being
       * bounded); from round 2 on, 30% of calls are 429 and 10% 5xx (the sandbox's fixed faults
       * seed), and the loop's 40 rounds make a change that never lands a 0.4^39 event. Whatever
       * the platform's batch sizes, the storm is really exercised.
       */
      it('applies everything exactly once through a retry loop', async () => {
        await h.sandbox.seed(people);
        const before = records(await pullAll(h.connector, null)).length;
        const targets = await undenied(120);
        const changes = targets.map(denial);
        let run: RetryRun;
        try {
          run = await pushWithRetries(h.connector, changes, {
            onRound: (n) => {
              if (n === 1) h.sandbox.setFaults({ rateLimitRate: 1, errorRate: 0 });
              else if (n === 2) h.sandbox.setFaults({ rateLimitRate: 0.3, errorRate: 0.1 });
            },
          });
        } finally {
          h.sandbox.resetFaults();
        }
        expect(run.failed).toEqual([]);
        expect(run.rounds).toBeGreaterThan(1);
        // Every change was refused at least once (round 1), and then went through exactly once.
        expect(run.retries).toBeGreaterThanOrEqual(changes.length);
        expect([...run.ok.keys()].sort()).toEqual(changes.map((c) => c.key).sort());
        expect([...run.ok.values()].every((n) => n === 1)).toBe(true);
        for (const r of targets) {
          const s = await h.sandbox.readState(r.subject);
          expect(s.exists).toBe(true);
          expect(s.consent[scopeKey(deny.channel, deny.purpose)]).toBe('denied');
        }
        // No duplicate effects: no record was created or lost.
        expect(records(await pullAll(h.connector, null)).length).toBe(before);
      });
    });

    describe('(7) webhook verification', () => {
      it('accepts a real delivery and refuses what the platform\'s authentication refuses', async () => {
        const mode = h.webhookAuth ?? 'signed-body';
        const hook = h.connector.webhook;
        if (mode === 'none') {
          expect(hook).toBeUndefined();
          return;
        }
        expect(hook, `webhookAuth ${mode} declares a webhook`).toBeDefined();
        if (!hook) return;
        await h.sandbox.seed(people);
        const target = (await undenied(1))[0] as RecordSnapshot;
        const req = await h.captureWebhook(target.subject);
        const events = await hook.verify(req);
        expect(events.length).toBeGreaterThan(0);
        // A replay is the same delivery: the same event ids (the store dedupes them).
        const replay = await hook.verify(req);
        expect(replay.map((e) => e.id)).toEqual(events.map((e) => e.id));
        const translated = await hook.toObservations(events);
        expect(translated.observations.some((o) => o.subject === target.subject && o.state === 'denied')).toBe(true);

        const rejection = async (r: WebhookRequest): Promise<WebhookRejection> => {
          try {
            await hook.verify(r);
          } catch (e) {
            expect(e).toBeInstanceOf(WebhookRejection);
            return e as WebhookRejection;
          }
          throw new Error('expected a rejection');
        };

        // A forgery: what the platform's authentication covers, changed.
        if (mode !== 'signed-body') expect(h.forgeWebhook, `webhookAuth ${mode} needs forgeWebhook`).toBeDefined();
        const forgedReq = h.forgeWebhook ? h.forgeWebhook(req) : { ...req, rawBody: Buffer.concat([req.rawBody, Buffer.from(' ')]) };
        expect(forgedReq.url === req.url && forgedReq.rawBody.equals(req.rawBody), 'the forgery differs from the delivery').toBe(false);
        const forged = await rejection(forgedReq);
        if (mode === 'signed-body') expect(['bad_signature', 'unauthorized']).toContain(forged.reason);
        else {
          expect(forged.reason).toBe('unauthorized');
          expect(forged.status).toBe(401);
        }

        if (mode === 'url-token') {
          // The platform validates the URL with a GET: no events; with a wrong token, refused.
          const get = (r: WebhookRequest): WebhookRequest => ({ ...r, method: 'GET', rawBody: Buffer.alloc(0) });
          expect(await hook.verify(get(req))).toEqual([]);
          expect((await rejection(get(forgedReq))).status).toBe(401);
        }
        if (mode === 'signed-body' && h.webhookHasTimestamp) {
          vi.useFakeTimers({ toFake: ['Date'] });
          try {
            vi.setSystemTime(Date.now() + 10 * 60_000);
            expect((await rejection(req)).reason).toBe('stale_timestamp');
          } finally {
            vi.useRealTimers();
          }
        }

        // Malformed bodies (on the real URL; re-signed where the body is signed) are refused.
        if (mode === 'signed-body') expect(h.resignWebhook, 'signed-body needs resignWebhook to test malformed bodies').toBeDefined();
        const bodies = h.malformedWebhookBodies?.(req.rawBody.toString('utf8')) ?? ['{"not": "an array"}', 'not json', JSON.stringify(Array.from({ length: 101 }, (_, i) => ({ eventId: i })))];
        expect(bodies.length).toBeGreaterThan(0);
        for (const body of bodies) {
          const bad: WebhookRequest = { ...req, rawBody: Buffer.from(body) };
          const r = await rejection(mode === 'signed-body' && h.resignWebhook ? h.resignWebhook(bad) : bad);
          expect(r.reason, body.slice(0, 80)).toBe('malformed');
          expect(r.status).toBe(400);
        }
      });
    });

    describe('(8) erase', () => {
      it('removes the record, and erasing again is harmless', async () => {
        await h.sandbox.seed(people);
        if (!h.connector.capabilities.erase) return;
        const all = records(await pullAll(h.connector, null));
        const subject = (all[0] as RecordSnapshot).subject;
        // Every record of the subject (duplicates included), as the planner would.
        const changes = all.filter((r) => r.subject === subject).map((r) => kitChange(r, { op: 'erase', channel: 'email', purpose: ALL_PURPOSES, target: null, rule: null, decidedBy: null }));
        expect((await h.sandbox.readState(subject)).exists).toBe(true);
        const results = await h.connector.push(changes);
        expect(results).toEqual(changes.map((c) => ({ key: c.key, status: 'ok' })));
        expect((await h.sandbox.readState(subject)).exists).toBe(false);
        const again = await h.connector.push(changes);
        expect(again.every((r) => r.status === 'ok')).toBe(true);
      });
    });
  });
}
