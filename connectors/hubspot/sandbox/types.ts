import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Faults } from '../../../src/sandbox/faults.js';
import type { HubSpotState, ChangeCtx } from './state.js';
import type { SearchResult } from './search.js';

/** What every handler sees. */
export interface Core {
  state: HubSpotState;
  faults: Faults;
  portalId: number;
  appId: number;
  commPrefsV4: boolean;
  /** Change context for writes made through the public API (webhook changeSource/sourceId). */
  apiCtx: ChangeCtx;
  /** Search answers per query key, valid for one state generation. */
  searchCache: Map<string, { generation: number; result: SearchResult }>;
  /** Base URL as the client reached us (for paging links). */
  url(): string;
}

export interface Ctx {
  core: Core;
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Parsed JSON body (400 VALIDATION_ERROR on invalid JSON). */
  body(): Promise<unknown>;
}

export type RouteHandler = (ctx: Ctx) => Promise<void> | void;

export interface Route {
  method: string;
  pattern: string;
  handler: RouteHandler;
  /** Search endpoints have their own 5/s limit. */
  search?: boolean;
  /** Only when commPrefsV4 is on. */
  v4?: boolean;
}
