/**
 * The benchmark's databases: notes-app-shaped tables (text, blobs, indexes)
 * written by native SQLCipher with SQLCipher 4 defaults, in rollback or WAL
 * mode, cached under bench/.data/ between runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import NativeDatabase from '@signalapp/sqlcipher';

export const PASSWORD = 'bench password';
export const DATA_DIR = path.resolve(import.meta.dirname, '.data');
const MB = 1024 * 1024;

export function workload(sizeMB: number, mode: 'delete' | 'wal'): string {
  fs.mkdirSync(DATA_DIR, { recursive: true });
  const file = path.join(DATA_DIR, `notes-${sizeMB}mb-${mode}.db`);
  if (fs.existsSync(file)) return file;
  const tmp = `${file}.building`;
  fs.rmSync(tmp, { force: true });
  const db = new NativeDatabase(tmp);
  db.pragma(`key = '${PASSWORD}'`);
  db.exec(`CREATE TABLE notes (id INTEGER PRIMARY KEY, title TEXT NOT NULL, body TEXT, tags TEXT, updated INTEGER);
    CREATE INDEX notes_title ON notes(title); CREATE INDEX notes_updated ON notes(updated);
    CREATE TABLE attachments (id INTEGER PRIMARY KEY, note_id INTEGER REFERENCES notes(id), data BLOB);`);
  const batch = `BEGIN;
    WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 2000)
    INSERT INTO notes (title, body, tags, updated) SELECT 'note ' || abs(random() % 1000000), hex(randomblob(300)) || ' lorem ipsum dolor sit amet', 'tag' || (i % 50), abs(random()) FROM c;
    INSERT INTO attachments (note_id, data) SELECT id, randomblob(1500) FROM notes WHERE id > (SELECT max(id) - 200 FROM notes);
    COMMIT;`;
  while (fs.statSync(tmp).size < sizeMB * MB) db.exec(batch);
  if (mode === 'wal') db.pragma('journal_mode = WAL');
  db.close();
  fs.renameSync(tmp, file);
  return file;
}
