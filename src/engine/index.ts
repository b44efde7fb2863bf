export * from './context.js';
export * from './retry.js';
export * from './pull.js';
export * from './reconcile.js';
export * from './apply.js';
export * from './plan-report.js';
export * from './statements.js';
export * from './decide-subject.js';
