/** One API call as a sandbox handles it, independent of HTTP (a batch runner can replay it). */
export interface ApiRequest {
  method: string;
  /** Path under the API's base (e.g. "/lists/abc/members" under /3.0, "/asm/groups" under /v3). */
  path: string;
  query: URLSearchParams;
  body: unknown;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
