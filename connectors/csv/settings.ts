import { z } from 'zod';
import { Channel, Purpose } from '../../src/model/types.js';

/**
 * Settings of a `kind: csv` connector (strict: unknown keys are errors).
 *
 * `purposes` follows the convention of every connector kind: native name -> canonical id.
 * Here the native name is the value of the file's purpose column, matched case-insensitively
 * after trimming. The names "*", "all" and "" (or no purpose column) always mean "*" (all
 * marketing on the channel) unless the map says otherwise.
 */
export const csvSettings = z.strictObject({
  /** The list file; relative paths resolve against the config file's directory. */
  path: z.string().min(1),
  /**
   * Seed: if `path` does not exist yet, copy this file there first (relative paths as for
   * `path`). Lets a committed, pristine example be used while consentd rewrites the copy.
   */
  copyFrom: z.string().min(1).optional(),
  delimiter: z.string().min(1).max(4).default(','),
  purposes: z.record(z.string(), Purpose).default({}),
  /** Channels the file may state; rows on other channels are rejected. */
  channels: z.array(Channel).min(1).default(['email']),
  /** Most changes one push (one rewrite of the file) receives. */
  batchSize: z.number().int().positive().default(50_000),
  /** Rows per pull page (a subject's adjacent rows are kept together). */
  pageSize: z.number().int().positive().default(5_000),
});
export type CsvSettings = z.output<typeof csvSettings>;
