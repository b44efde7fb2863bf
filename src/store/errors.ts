/** Stable error codes of the store: callers switch on `code`, never on the message. */
export type StoreErrorCode =
  | 'STORE_SCHEMA_TOO_NEW'
  | 'STORE_SCHEMA_OUTDATED'
  | 'STORE_MIGRATION_FAILED'
  | 'STORE_SALT_MISMATCH'
  | 'STORE_CLOSED'
  | 'STORE_INVALID_OBSERVATION'
  | 'STORE_BAD_PAGE'
  | 'OUTBOX_INVALID_TRANSITION';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}
