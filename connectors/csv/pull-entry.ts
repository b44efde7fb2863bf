import type { OffThreadPullModule, PullPage } from '../../src/connectors/contract.js';
import type { Channel } from '../../src/model/types.js';
import { purposeMap, type RowContext } from './mapping.js';
import { pullPages } from './parse.js';

/**
 * The CSV pull from plain data: what the connector's pull runs, and what a pull worker thread
 * imports to run the same pull off the main thread (Connector.pullOffThread).
 */
export interface CsvPullArgs {
  path: string;
  delimiter: string;
  connectorId: string;
  pageSize: number;
  /** Native purpose name -> canonical id (the settings' map). */
  purposes: Record<string, string>;
  channels: Channel[];
}

/** What reading a row needs (purpose map, channels), from the settings' values. */
export function csvRowContext(settings: Pick<CsvPullArgs, 'purposes' | 'channels'>): Omit<RowContext, 'columns'> {
  return { purposes: purposeMap(settings.purposes), channels: new Set(settings.channels) };
}

export function pullCsv(args: CsvPullArgs): AsyncIterable<PullPage> {
  const ctx = csvRowContext(args);
  return pullPages({ path: args.path, delimiter: args.delimiter, connectorId: args.connectorId, pageSize: args.pageSize, ctx });
}

/** The OffThreadPullModule entry (CSV always reads the whole file: the cursor is not needed). */
export const pull: OffThreadPullModule['pull'] = (args) => pullCsv(args as CsvPullArgs);

/** This module's URL, as an OffThreadPull names it (the .ts file when running from source). */
export const PULL_ENTRY = import.meta.url;
