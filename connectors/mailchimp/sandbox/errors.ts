import { randomUUID } from 'node:crypto';

/** Mailchimp's error document (RFC 7807, `application/problem+json`). */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: { field: string; message: string }[];
}

export const PROBLEM_TYPE = 'https://mailchimp.com/developer/marketing/docs/errors/';
export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';

export function problem(status: number, title: string, detail: string, errors?: { field: string; message: string }[]): Problem {
  const p: Problem = { type: PROBLEM_TYPE, title, status, detail, instance: randomUUID() };
  if (errors) p.errors = errors;
  return p;
}

/** Thrown by handlers; the server answers it as problem+json. */
export class McHttpError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
  }
}

export const notFound = (): McHttpError => new McHttpError(problem(404, 'Resource Not Found', 'The requested resource could not be found.'));

export const invalidResource = (errors: { field: string; message: string }[]): McHttpError =>
  new McHttpError(problem(400, 'Invalid Resource', "The resource submitted could not be validated. For field-specific details, see the 'errors' array.", errors));

export const badRequest = (title: string, detail: string): McHttpError => new McHttpError(problem(400, title, detail));

export const complianceState = (email: string): McHttpError =>
  badRequest(
    'Member In Compliance State',
    `${email} is already a list member in compliance state due to unsubscribe, bounce, or compliance review. Please try again with a status of pending.`,
  );

export const forgottenEmail = (email: string): McHttpError =>
  badRequest('Forgotten Email Not Subscribed', `${email} was permanently deleted and cannot be re-imported. The contact must re-subscribe to get back on the list.`);

export const tooManyConnections = (max: number): Problem =>
  problem(429, 'Too Many Requests', `You have exceeded the limit of ${max} simultaneous connections.`);
