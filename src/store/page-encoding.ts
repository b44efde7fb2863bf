import type { Observation, RecordSnapshot } from '../model/index.js';
import { encodeSqlitePullPage } from './sqlite/rows.js';
import type { EncodedPullPage, StoreEncoding } from './store.js';

/**
 * Encode a pull page the way a store of this encoding writes it (Store.encoding). Pure: a pull
 * worker thread calls it, so the thread that writes only writes. It checks what the store would
 * check (a missing required field throws STORE_INVALID_OBSERVATION).
 */
export function encodePullPage(encoding: StoreEncoding, page: { observations: readonly Observation[]; records: readonly RecordSnapshot[] }): EncodedPullPage {
  switch (encoding) {
    case 'sqlite':
      return encodeSqlitePullPage(page);
  }
}
