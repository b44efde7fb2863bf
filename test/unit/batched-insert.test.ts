import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { BatchedInsert } from '../../src/store/sqlite/batched-insert.js';

describe('BatchedInsert (multi-row appends of the pull logs)', () => {
  it.each([0, 1, 7, 8, 9, 24, 31])('writes %i rows exactly once, in order, whole statements and the remainder', (n) => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE log (seq INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT NOT NULL, b INTEGER)');
    const ins = new BatchedInsert(db, 'log', ['a', 'b'], 8);
    db.transaction(() => {
      ins.begin();
      for (let i = 0; i < n; i++) ins.add(`row ${i}`, i % 3 === 0 ? null : i);
      ins.flush();
    })();
    expect(db.prepare('SELECT seq, a, b FROM log ORDER BY seq').all()).toEqual(Array.from({ length: n }, (_, i) => ({ seq: i + 1, a: `row ${i}`, b: i % 3 === 0 ? null : i })));
  });

  it('a failed transaction leaves nothing behind for the next one', () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE log (seq INTEGER PRIMARY KEY, a TEXT NOT NULL)');
    const ins = new BatchedInsert(db, 'log', ['a'], 4);
    expect(() =>
      db.transaction(() => {
        ins.begin();
        for (let i = 0; i < 6; i++) ins.add(`lost ${i}`);
        throw new Error('page rejected');
      })(),
    ).toThrow('page rejected');
    db.transaction(() => {
      ins.begin();
      ins.add('kept');
      ins.flush();
    })();
    expect(db.prepare('SELECT a FROM log').pluck().all()).toEqual(['kept']);
  });

  it('a row the table refuses fails the statement that carries it', () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE log (seq INTEGER PRIMARY KEY, a TEXT NOT NULL)');
    const ins = new BatchedInsert(db, 'log', ['a'], 4);
    ins.begin();
    ins.add('a');
    ins.add('b');
    ins.add(null);
    expect(() => ins.add('d')).toThrow(/NOT NULL/);
  });
});
