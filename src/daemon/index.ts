export * from './metrics.js';
export * from './outbox-worker.js';
export * from './scheduler.js';
export * from './shutdown.js';
export * from './daemon.js';
export { buildApp } from './http/app.js';
export { HttpError, ERROR_STATUS, errorAnswer } from './http/errors.js';
export type { HttpErrorCode } from './http/errors.js';
export * from './http/types.js';
