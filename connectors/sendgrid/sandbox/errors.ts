/** SendGrid's error body: `{"errors":[{"field":..., "message":...}]}`. */
export interface SgErrorBody {
  errors: { field: string | null; message: string }[];
}

export function sgErrors(message: string, field: string | null = null): SgErrorBody {
  return { errors: [{ field, message }] };
}

export class SgHttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: SgErrorBody,
  ) {
    super(body.errors.map((e) => e.message).join('; '));
  }
}

export const sgError = (status: number, message: string, field: string | null = null): SgHttpError => new SgHttpError(status, sgErrors(message, field));
export const AUTH_REQUIRED = sgErrors('authorization required');
export const TOO_MANY = sgErrors('too many requests');
