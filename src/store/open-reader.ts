import type { Store, StoreReaderSpec } from './store.js';
import { openSqliteStore } from './sqlite/index.js';

/** Open the read-only view a store described with readerSpec() (in a worker thread). */
export function openStoreReader(spec: StoreReaderSpec): Store {
  switch (spec.kind) {
    case 'sqlite':
      return openSqliteStore(spec.path, { readonly: true, salt: spec.salt, snapshot: true });
  }
}
