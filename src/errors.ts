/*
 * Stable error codes (fastify lib/errors.js habit). The CLI exit code, HTTP answers and metrics
 * switch on `code`, never on the message. Errors raised by other modules (ConfigError,
 * InvalidEmailError, StoreError, better-sqlite3's SqliteError) carry their own `code`; this table
 * maps those too.
 */

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'INVALID_EMAIL'
  | 'USAGE'
  | 'CONNECTOR_FAILED'
  | 'PARTIAL'
  | 'STORE_FAILED'
  | 'NOT_FOUND'
  | 'INTERNAL';

/** Process exit code per error code (documented in src/cli/main.ts). */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = Object.freeze({
  INTERNAL: 1,
  CONFIG_INVALID: 2,
  CONNECTOR_FAILED: 3,
  PARTIAL: 4,
  STORE_FAILED: 5,
  NOT_FOUND: 6,
  INVALID_EMAIL: 64,
  USAGE: 64,
});

export class ConsentdError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ConsentdError';
  }

  get exitCode(): number {
    return EXIT_CODES[this.code];
  }
}

export class UsageError extends ConsentdError {
  constructor(message: string) {
    super('USAGE', message);
    this.name = 'UsageError';
  }
}

export class ConnectorFailedError extends ConsentdError {
  constructor(
    readonly connectorId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super('CONNECTOR_FAILED', `connector ${connectorId}: ${message}`, options);
    this.name = 'ConnectorFailedError';
  }
}

/** The command ran to the end, but some rows were rejected or some changes dead-lettered. */
export class PartialError extends ConsentdError {
  constructor(message: string) {
    super('PARTIAL', message);
    this.name = 'PartialError';
  }
}

function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : undefined;
}

/** The stable code for any thrown value (foreign codes folded into ours). */
export function errorCode(err: unknown): ErrorCode {
  const code = codeOf(err);
  if (code === undefined) return 'INTERNAL';
  if (code in EXIT_CODES) return code as ErrorCode;
  if (code.startsWith('STORE_') || code.startsWith('SQLITE_') || code === 'OUTBOX_INVALID_TRANSITION') return 'STORE_FAILED';
  if (code === 'UNKNOWN_CONNECTOR_KIND') return 'CONFIG_INVALID';
  if (code.startsWith('commander.')) return 'USAGE';
  return 'INTERNAL';
}

export function exitCodeFor(err: unknown): number {
  return EXIT_CODES[errorCode(err)];
}
