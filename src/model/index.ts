export * from './email.js';
export * from './types.js';
