import type { z } from 'zod';
import type { Logger } from 'pino';
import type { Change, Channel, ObservationInput, RecordSnapshot } from '../model/index.js';

/** Per-platform API limits; the outbox worker's p-queue enforces them. */
export interface ConnectorLimits {
  /** Most changes one push() call receives. */
  batchSize: number;
  requestsPerInterval: number;
  intervalMs: number;
  /** Requests in flight at once. */
  concurrency: number;
}

export interface Scope {
  channel: Channel;
  purpose: string;
}

/** What the platform can express, so the planner knows which changes it can receive. */
export interface ConnectorCapabilities {
  /** (channel, purpose) pairs the records carry; purpose ids are canonical (config-mapped). */
  consent: Scope[];
  /** Channels on which the platform has a suppression mechanism. */
  suppression: Channel[];
  /** The platform can be told "granted" (resubscribe). If false, grants are never pushed. */
  pushGrants: boolean;
  /** The platform can erase (delete or anonymize) a record. */
  erase: boolean;
  /**
   * The platform suppresses bare addresses without a record (SendGrid global suppressions):
   * the planner sends denials and suppressions for every subject, not only those it holds.
   */
  acceptsUnknownAddresses: boolean;
  /**
   * Erasing keeps the bare address on a suppression list, so it is never mailed again (policy
   * rule 6: "where impossible, anonymize and suppress"). Seeing that residue on a later pull is
   * expected and is not a re-import to erase again.
   */
  eraseKeepsSuppression?: boolean;
  /**
   * A (channel, *) denial the platform holds is never lifted by consentd (SendGrid global
   * unsubscribes): grants of `*` are not planned there, nor purpose grants while the record's
   * (channel, *) is denied (they could not take effect).
   */
  keepsChannelDenial?: boolean;
  /**
   * A (channel, *) denial here also switches off every purpose of the channel (HubSpot's
   * unsubscribe-all unsubscribes every subscription type; a SendGrid global unsubscribe stops
   * every group). After such a push the record holds every purpose denied, and a purpose grant
   * is not planned while the record's (channel, *) is denied: the platform cannot hold "all off
   * but this one on", and pushing it would lift the denial or come back as a fresh denial.
   */
  channelDenialCoversPurposes?: boolean;
}

/** One page of a pull. The engine stores it and its cursor in one transaction. */
export interface PullPage {
  records: RecordSnapshot[];
  observations: ObservationInput[];
  /** Cursor to resume after this page; null while the pull has no resumable position yet. */
  cursor: string | null;
  /** Malformed source rows, reported and skipped (file/line or record id and reason). */
  rejects?: PullReject[];
}

export interface PullReject {
  where: string;
  reason: string;
}

export type PushResult =
  | { key: string; status: 'ok'; snapshot?: RecordSnapshot }
  | { key: string; status: 'retry'; reason: string; retryAfterMs?: number }
  | { key: string; status: 'failed'; reason: string; code?: string };

/** A webhook request exactly as it arrived: raw bytes are kept for signature checks. */
export interface WebhookRequest {
  method: string;
  /** Full URL including query string, as the platform signed it. */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  rawBody: Buffer;
  receivedAt: Date;
}

/** One verified platform event; `id` is the platform's event id (dedupe key). */
export interface WebhookEvent {
  id: string;
  type: string;
  occurredAt: string | null;
  payload: unknown;
}

export interface WebhookTranslation {
  observations: ObservationInput[];
  /** Record snapshots the events revealed (e.g. a contact resolved from an objectId). */
  records?: RecordSnapshot[];
  /**
   * Erasure requests for records whose person the platform can no longer name (HubSpot sends
   * contact.privacyDeletion after the contact is gone). The engine finds the person from the
   * record snapshot it stored, and records the erasure request for them.
   */
  erasuresByRecord?: Array<{ recordId: string; reference: string | null; statedAt: string | null }>;
  /**
   * The person moved to a new address (Mailchimp upemail). The engine carries the old address's
   * denials and suppressions (never its grants) over to the new one, with their own times.
   */
  addressChanges?: Array<{ from: string; to: string; reference: string | null }>;
}

/** What consentd already knows about this connector's records (see toObservations). */
export interface KnownRecords {
  /** The subject (normalized email) whose record this is, or null if never stored. */
  subjectOf(recordId: string): Promise<string | null>;
}

export interface ConnectorWebhook {
  /**
   * Verify signature / token, timestamp window and body shape. Throws WebhookRejection for
   * anything bad; returns the events otherwise. Must compare secrets in constant time.
   * May return an immediate response for handshake requests (e.g. Mailchimp's GET).
   */
  verify(req: WebhookRequest): Promise<WebhookEvent[]>;
  /**
   * Turn verified events into observations (may call the platform to resolve ids). `known`
   * answers from consentd's own store which person a record of this connector belongs to, so a
   * connector whose events name only a record id need not spend API calls on records it has seen.
   */
  toObservations(events: WebhookEvent[], known?: KnownRecords): Promise<WebhookTranslation>;
  /**
   * The answer the platform needs once the events are durable, when a bare 200 is not enough
   * (Salesforce Outbound Messages want a SOAP `<Ack>true</Ack>`, or they are redelivered).
   */
  acknowledge?(): { status: number; contentType: string; body: string };
}

export type WebhookRejectionReason = 'bad_signature' | 'stale_timestamp' | 'malformed' | 'unauthorized' | 'too_large';

export class WebhookRejection extends Error {
  readonly code = 'WEBHOOK_REJECTED';
  constructor(
    readonly reason: WebhookRejectionReason,
    message: string,
    /** HTTP status to answer; 401 for auth failures, 400 for malformed. */
    readonly status: number = reason === 'malformed' ? 400 : reason === 'too_large' ? 413 : 401,
  ) {
    super(message);
  }
}

export interface CheckResult {
  ok: boolean;
  /** Human-readable lines: what works, what the account lacks. */
  details: string[];
}

/**
 * How another thread can run a connector's pull (Connector.pullOffThread): a module exporting
 * `pull(args, cursor): AsyncIterable<PullPage>`, the plain data it needs, and how much work it is.
 * Offered by connectors whose pull is CPU work on local data (parsing a file), so the engine can
 * parse on a worker thread while the main thread writes. The module must not need anything of
 * the main thread (its logger, hooks, test interceptors).
 */
export interface OffThreadPull {
  /** URL of the module (file: URL string). */
  module: string;
  /** Plain data (structured-cloneable) handed to its `pull`. */
  args: unknown;
  /** Bytes to read (the engine uses a worker only when it is worth starting one). */
  bytes: number;
}

/** What an OffThreadPull module exports. */
export type OffThreadPullModule = { pull(args: unknown, cursor: string | null): AsyncIterable<PullPage> };

/** A live connector instance (DESIGN.md section 3). */
export interface Connector {
  readonly id: string;
  readonly kind: string;
  readonly limits: ConnectorLimits;
  readonly capabilities: ConnectorCapabilities;
  /** cursor null = full pull; otherwise "changed since". */
  pull(cursor: string | null): AsyncIterable<PullPage>;
  /**
   * Optional: the same pull as an OffThreadPull (null when it cannot run off-thread this time).
   * Its pages must be exactly what pull(cursor) would yield.
   */
  pullOffThread?(cursor: string | null): Promise<OffThreadPull | null>;
  /** Apply up to limits.batchSize changes; one result per change, same keys. */
  push(changes: Change[]): Promise<PushResult[]>;
  readonly webhook?: ConnectorWebhook;
  check(): Promise<CheckResult>;
  close?(): Promise<void>;
}

export interface ConnectorContext {
  /** Connector id from config. */
  id: string;
  /** Canonical purposes declared in config. */
  purposes: readonly string[];
  logger: Logger;
  /** Directory relative paths in the connector's config resolve against (the config file's). */
  baseDir: string;
  /** Counts API calls / rate-limit waits for metrics; optional in tests. */
  onApiCall?: (endpoint: string, status: number | 'error') => void;
  onRateLimitWait?: (ms: number) => void;
}

/**
 * A connector kind: one typed object with the zod schema of its config section
 * (the nango createSync habit). Secret fields in the schema are marked with `secret()`.
 */
export interface ConnectorDefinition<S extends z.ZodType = z.ZodType> {
  kind: string;
  configSchema: S;
  create(config: z.infer<S>, ctx: ConnectorContext): Connector;
}

export function defineConnector<S extends z.ZodType>(def: ConnectorDefinition<S>): ConnectorDefinition<S> {
  return def;
}

/**
 * Wraps a push so that calls made concurrently still run one after another (a file rewrite, or
 * records that must be created once). A failed push does not stop the ones queued behind it.
 */
export function oneAtATime<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  let queue: Promise<unknown> = Promise.resolve();
  return (...args: A): Promise<R> => {
    const run = queue.then(
      () => fn(...args),
      () => fn(...args),
    );
    // The tail of the queue settles with nothing: it must not hold the last push's results
    // (a 100k-change CSV push: ~85 MB kept alive per connector until its next push).
    queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };
}

/**
 * Wraps a push so that concurrent calls sharing a record run one after another, while calls on
 * disjoint records run side by side (Salesforce: a record's Individual must be created once, but
 * a big push must not hold back an instant one for other people). A push waits for every push
 * in flight that holds one of its records; a failed push releases its records like a finished one.
 */
export function oneAtATimePerRecord(fn: (changes: Change[]) => Promise<PushResult[]>): (changes: Change[]) => Promise<PushResult[]> {
  const holders = new Map<string, Promise<unknown>>();
  return async (changes) => {
    const records = [...new Set(changes.map((c) => c.recordId))];
    for (;;) {
      const blocking = new Set(records.map((r) => holders.get(r)).filter((p): p is Promise<unknown> => p !== undefined));
      if (blocking.size === 0) break;
      await Promise.allSettled(blocking);
    }
    // No await between the check above and taking the records: no other push can slip in.
    const run = fn(changes);
    const held = run.catch(() => undefined);
    for (const r of records) holders.set(r, held);
    try {
      return await run;
    } finally {
      for (const r of records) if (holders.get(r) === held) holders.delete(r);
    }
  };
}
