/**
 * A 100 MB database is created, queried and closed with memory far below its
 * size: the VFS reads and writes pages in place and never holds the file.
 */
import { it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { openDatabase } from '../src/node.ts';
import { tempDir } from './helpers.ts';

const MB = 1024 * 1024;
const TARGET = 100 * MB;

it('creates, queries and closes a 100 MB database in bounded memory', async () => {
  const file = path.join(tempDir('memory'), 'big.db');
  const db = await openDatabase(file, { password: 'pw', create: true });
  await db.exec('CREATE TABLE docs (id INTEGER PRIMARY KEY, title TEXT, body BLOB); CREATE INDEX docs_title ON docs(title)');
  const baseline = process.memoryUsage().rss;
  let peak = baseline;
  const sample = () => (peak = Math.max(peak, process.memoryUsage().rss));

  let rows = 0;
  while (fs.statSync(file).size < TARGET) {
    await db.exec(`BEGIN; WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 4000)
      INSERT INTO docs (title, body) SELECT 'title ' || (abs(random()) % 100000), randomblob(1000) FROM c; COMMIT`);
    rows += 4000;
    sample();
  }
  const [stats] = await db.query('SELECT count(*) AS n, sum(length(body)) AS bytes FROM docs');
  sample();
  assert.equal(stats!.n, rows);
  assert.equal(stats!.bytes, rows * 1000);
  assert.equal((await db.query("SELECT id FROM docs WHERE title = 'no such title'")).length, 0);
  sample();
  await db.close();
  sample();

  const growth = peak - baseline;
  const size = fs.statSync(file).size;
  console.log(`memory: database ${(size / MB).toFixed(1)} MB, peak RSS ${(peak / MB).toFixed(1)} MB, growth ${(growth / MB).toFixed(1)} MB`);
  assert.ok(size >= TARGET);
  assert.ok(growth < 48 * MB, `RSS grew ${(growth / MB).toFixed(1)} MB while writing a ${(size / MB).toFixed(0)} MB database`);
});
