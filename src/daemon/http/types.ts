import type { Logger } from 'pino';
import type { Connector, WebhookEvent, WebhookRequest } from '../../connectors/contract.js';
import type { Channel } from '../../model/index.js';
import type { DeadLetter, RunInfo } from '../../store/store.js';
import type { DaemonMetrics } from '../metrics.js';

/** A response the intake wants sent instead of the default JSON (Salesforce's SOAP Ack). */
export interface WebhookResponseOverride {
  status: number;
  contentType: string;
  body: string | Buffer;
}

export interface WebhookIntakeResult {
  /** Events that were new and are now durable. */
  accepted: number;
  /** Events seen before (dedupe by connector + event id). */
  duplicates: number;
  response?: WebhookResponseOverride;
}

/**
 * The engine's webhook intake: toObservations + store.recordWebhookEvents + schedule the instant
 * reconcile (and notify the outbox worker). Resolves only once the events are durable; the HTTP
 * layer answers 2xx only after that. Throwing makes the platform retry (503).
 */
export type WebhookIntakeFn = (connectorId: string, events: WebhookEvent[], request: WebhookRequest) => Promise<WebhookIntakeResult>;

/** Body of POST /v1/optouts after validation; email already normalized. */
export interface OptOutInput {
  email: string;
  channel: Channel;
  /** Purpose id or "*" (default). */
  purpose: string;
  evidence: string | null;
}

/** Body of POST /v1/grants after validation; email already normalized. */
export interface GrantInput {
  email: string;
  channel: Channel;
  purpose: string;
  evidence: string;
}

export interface EraseInput {
  email: string;
}

/** What an admin write returns; sent back in the 202 body (no personal data, please). */
export type AdminWriteResult = Record<string, unknown> | void;

/**
 * Admin operations (the engine implements them). Every write resolves only once durable;
 * emails are normalized (subject keys) before they get here.
 */
export interface AdminApi {
  /** History and reasoning for a subject (policy rule 8); null when the subject is unknown. */
  explain(email: string): Promise<object | null>;
  optOut(input: OptOutInput): Promise<AdminWriteResult>;
  grant(input: GrantInput): Promise<AdminWriteResult>;
  erase(input: EraseInput): Promise<AdminWriteResult>;
  listRuns(limit: number): Promise<RunInfo[]>;
  listDeadLetters(limit: number): Promise<DeadLetter[]>;
  /** Dead letter back to the outbox; false when no such id. */
  replayDeadLetter(id: number): Promise<boolean>;
}

export interface ReadinessCheck {
  ok: boolean;
  detail?: string;
}

export interface Readiness {
  ok: boolean;
  checks: Record<string, ReadinessCheck>;
}

export interface DaemonHttpDeps {
  /** A pino instance (src/log/logger.ts createLogger); request lines carry no URL or body. */
  logger: Logger;
  metrics: DaemonMetrics;
  /** Live connectors by id; those with `webhook` accept POST/GET /webhooks/:id. */
  connectors: ReadonlyMap<string, Connector>;
  intake: WebhookIntakeFn;
  admin: AdminApi;
  readiness: () => Promise<Readiness>;
  /** Bearer tokens of the admin API; empty = no admin API (everything under /v1 is 404). */
  adminTokens: readonly string[];
  /** Largest accepted request body (webhooks and admin). */
  bodyLimitBytes: number;
  /** True once shutdown began: webhooks and admin writes answer 503 with Retry-After. */
  isDraining: () => boolean;
  /**
   * Public base URL the platforms call (e.g. "https://consent.example.com"): the URL handed to
   * verify() is this prefix + the request's path and query. Null / absent: protocol + Host header.
   */
  publicUrl?: string | null;
  /** Trust X-Forwarded-* headers (behind a reverse proxy); default false. */
  trustProxy?: boolean;
  /** Seconds in Retry-After while draining; default 5. */
  retryAfterSeconds?: number;
}
