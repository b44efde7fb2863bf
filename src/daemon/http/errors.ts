/*
 * Stable error codes of the HTTP API (fastify lib/errors.js habit): the error handler switches
 * on `code`, never on a message, and the answer body carries only the public `error` string
 * (plus a field / reason where the caller needs it). Stack traces never leave the process.
 */

export type HttpErrorCode =
  | 'BAD_REQUEST'
  | 'INVALID_EMAIL'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'UNKNOWN_CONNECTOR'
  | 'DRAINING'
  | 'INTAKE_FAILED';

/** An error a route throws on purpose; `details` are merged into the JSON answer. */
export class HttpError extends Error {
  constructor(
    readonly code: HttpErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

interface Mapping {
  status: number;
  error: string;
}

/** Error code -> answer. Codes of fastify, of this module, of the store and of the model. */
export const ERROR_STATUS: Readonly<Record<string, Mapping>> = {
  BAD_REQUEST: { status: 400, error: 'bad_request' },
  INVALID_EMAIL: { status: 400, error: 'invalid_email' },
  UNAUTHORIZED: { status: 401, error: 'unauthorized' },
  NOT_FOUND: { status: 404, error: 'not_found' },
  UNKNOWN_CONNECTOR: { status: 404, error: 'unknown_connector' },
  DRAINING: { status: 503, error: 'draining' },
  INTAKE_FAILED: { status: 503, error: 'intake_failed' },
  // fastify
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, error: 'too_large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: { status: 415, error: 'unsupported_media_type' },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { status: 400, error: 'bad_content_length' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, error: 'empty_json_body' },
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, error: 'malformed_json' },
  FST_ERR_CTP_EMPTY_TYPE: { status: 400, error: 'bad_content_type' },
  FST_ERR_CTP_INVALID_TYPE: { status: 400, error: 'bad_content_type' },
  FST_ERR_VALIDATION: { status: 400, error: 'bad_request' },
  FST_ERR_BAD_URL: { status: 400, error: 'bad_url' },
  // model / store
  WEBHOOK_REJECTED: { status: 401, error: 'rejected' },
  STORE_CLOSED: { status: 503, error: 'unavailable' },
};

const INTERNAL: Mapping = { status: 500, error: 'internal' };

function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : undefined;
}

/** The answer for any thrown value: status and JSON body; never a message or a stack. */
export function errorAnswer(err: unknown): { status: number; body: Record<string, unknown> } {
  const code = codeOf(err);
  const m = (code !== undefined ? ERROR_STATUS[code] : undefined) ?? fallback(err);
  const details = err instanceof HttpError ? err.details : {};
  return { status: m.status, body: { error: m.error, ...details } };
}

/** Unknown codes: a 4xx statusCode set by fastify or a plugin is kept (as `bad_request`), else 500. */
function fallback(err: unknown): Mapping {
  if (typeof err === 'object' && err !== null) {
    const s = (err as { statusCode?: unknown }).statusCode;
    if (typeof s === 'number' && s >= 400 && s < 500) return { status: s, error: s === 404 ? 'not_found' : 'bad_request' };
  }
  return INTERNAL;
}
