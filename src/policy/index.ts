export * from './decide.js';
export * from './explain.js';
