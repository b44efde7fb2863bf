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

  it('with an upsert clause: a row whose key exists updates it, later rows of one statement over earlier ones', () => {
    const db = new Database(':memory:');
    db.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');
    db.prepare("INSERT INTO kv VALUES ('b', 0), ('z', 0)").run();
    const up = new BatchedInsert(db, 'kv', ['k', 'v'], 4, 'ON CONFLICT (k) DO UPDATE SET v = excluded.v');
    db.transaction(() => {
      up.begin();
      // One whole statement of 4 (b twice: the later wins), then 2 one at a time.
      for (const [k, v] of [['a', 1], ['b', 2], ['c', 3], ['b', 4], ['d', 5], ['z', 6]] as const) up.add(k, v);
      up.flush();
    })();
    expect(db.prepare('SELECT k, v FROM kv ORDER BY k').all()).toEqual([
      { k: 'a', v: 1 },
      { k: 'b', v: 4 },
      { k: 'c', v: 3 },
      { k: 'd', v: 5 },
      { k: 'z', v: 6 },
    ]);
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
