import { randomUUID } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { sendJson } from '../../../src/sandbox/http.js';

/** HubSpot's error categories used by the sandbox. */
export type HsCategory =
  | 'VALIDATION_ERROR'
  | 'OBJECT_NOT_FOUND'
  | 'INVALID_AUTHENTICATION'
  | 'RATE_LIMITS'
  | 'CONFLICT'
  | 'INTERNAL_ERROR'
  | 'BAD_GATEWAY'
  | 'SERVICE_UNAVAILABLE'
  | 'MISSING_SCOPES';

export function correlationId(): string {
  return randomUUID();
}

/**
 * HubSpot's error body: `{status:'error', message, correlationId, category, ...}`, always with
 * `Content-Type: application/json` (the SDK throws "Cannot parse content" otherwise).
 */
export function hsError(res: ServerResponse, status: number, category: HsCategory, message: string, extra: Record<string, unknown> = {}): void {
  sendJson(res, status, { status: 'error', message, correlationId: correlationId(), category, ...extra });
}

/** One item error inside a 207 batch answer (the SDK's StandardError). */
export interface StandardError {
  status: 'error';
  category: string;
  message: string;
  context?: Record<string, string[]>;
  subCategory?: string;
}

/** Thrown by handlers for a whole-request error; the router turns it into hsError(). */
export class HsHttpError extends Error {
  constructor(
    readonly status: number,
    readonly category: HsCategory,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export function validation(message: string, extra: Record<string, unknown> = {}): HsHttpError {
  return new HsHttpError(400, 'VALIDATION_ERROR', message, extra);
}

export function notFound(message = 'resource not found'): HsHttpError {
  return new HsHttpError(404, 'OBJECT_NOT_FOUND', message);
}

/** "Property values were not valid: [...]" as HubSpot words it (one JSON entry per bad property). */
export interface PropertyProblem {
  name: string;
  error: 'READ_ONLY_VALUE' | 'PROPERTY_DOESNT_EXIST' | 'INVALID_EMAIL' | 'INVALID_OPTION';
  message: string;
}

export function propertyValuesInvalid(problems: PropertyProblem[]): HsHttpError {
  const detail = problems.map((p) => ({ isValid: false, message: p.message, error: p.error, name: p.name }));
  return validation(`Property values were not valid: ${JSON.stringify(detail)}`);
}
