import type Database from 'better-sqlite3';

/**
 * Appends (or upserts) rows to a table: one at a time (run), or in bulk with one multi-row INSERT per `size` rows: a statement per row costs
 * about a quarter more per row (measured: 3.4 against 2.7 us a row into obs_log; with
 * AUTOINCREMENT, sqlite_sequence is also written once per statement, not per row).
 * In bulk, inside one transaction: begin() first, add() each row, flush() before it commits.
 */
export class BatchedInsert {
  private readonly many: Database.Statement;
  private readonly one: Database.Statement;
  private readonly width: number;
  private values: unknown[] = [];

  /** `onConflict`: an upsert clause appended to each statement (rows of one statement apply in order). */
  constructor(db: Database.Database, table: string, columns: readonly string[], readonly size = 64, onConflict = '') {
    this.width = columns.length;
    const row = `(${columns.map(() => '?').join(', ')})`;
    const head = `INSERT INTO ${table} (${columns.join(', ')}) VALUES `;
    const tail = onConflict === '' ? '' : ` ${onConflict}`;
    this.one = db.prepare(head + row + tail);
    this.many = db.prepare(head + Array.from({ length: size }, () => row).join(', ') + tail);
  }

  /** One row now, outside any batch (a webhook's statements, a pushed snapshot). */
  run(...row: unknown[]): void {
    this.one.run(row);
  }

  /** Forget rows added but not flushed (a transaction that failed and rolled back). */
  begin(): void {
    this.values = [];
  }

  /** One row, its values in the columns' order. */
  add(...row: unknown[]): void {
    for (const v of row) this.values.push(v);
    if (this.values.length === this.width * this.size) {
      this.many.run(this.values);
      this.values = [];
    }
  }

  /** Write what is left (fewer than `size` rows: one statement each). */
  flush(): void {
    const v = this.values;
    this.values = [];
    for (let i = 0; i < v.length; i += this.width) this.one.run(v.slice(i, i + this.width));
  }
}
