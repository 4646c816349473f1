/**
 * The main job, end to end on the local filesystem: create an encrypted
 * database, write and read it, show that the file is ciphertext, refuse a
 * wrong password, change the password, and check native-format details.
 *
 * The password comes from CIPHERKEEP_PASSWORD or is generated; it is never printed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { openDatabase, WrongKeyError, ENGINE_PIN } from '../src/node.ts';

const dir = path.resolve(process.argv[2] ?? 'demo-data');
const file = path.join(dir, 'notes.db');
const password = process.env.CIPHERKEEP_PASSWORD ?? crypto.randomUUID();
const say = (line: string) => console.log(`cipherkeep demo: ${line}`);

fs.rmSync(dir, { recursive: true, force: true });
fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
say(`engine SQLite ${ENGINE_PIN.sqlite} + SQLite3 Multiple Ciphers ${ENGINE_PIN.sqlite3mc} (wasm sha256 ${ENGINE_PIN.sha256.slice(0, 12)}…)`);

const db = await openDatabase(file, { password, create: true });
await db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created TEXT DEFAULT CURRENT_TIMESTAMP)');
await db.transaction(async (tx) => {
  for (const body of ['buy milk', 'call the bank', 'back up the laptop']) {
    await tx.run('INSERT INTO notes (body) VALUES (?)', [body]);
  }
});
const rows = await db.query<{ id: number; body: string }>('SELECT id, body FROM notes ORDER BY id');
say(`created ${file} and wrote ${rows.length} notes: ${rows.map((r) => JSON.stringify(r.body)).join(', ')}`);
await db.close();

const bytes = fs.readFileSync(file);
const plainHeader = bytes.subarray(0, 16).toString('latin1') === 'SQLite format 3\0';
const leaks = bytes.includes(Buffer.from('call the bank'));
say(`file is ${bytes.length} bytes, mode ${(fs.statSync(file).mode & 0o777).toString(8)}, plaintext header: ${plainHeader ? 'YES' : 'no'}, note text visible: ${leaks ? 'YES' : 'no'}`);
say(`random KDF salt (first 16 bytes): ${bytes.subarray(0, 16).toString('hex')}`);

try {
  await openDatabase(file, { password: 'not the password' });
  say('ERROR: a wrong password opened the database');
  process.exitCode = 1;
} catch (e) {
  say(`wrong password refused: ${e instanceof WrongKeyError ? 'WrongKeyError' : String(e)}`);
}

const newPassword = crypto.randomUUID();
const again = await openDatabase(file, { password });
await again.rekey({ password: newPassword });
await again.close();
const rekeyed = await openDatabase(file, { password: newPassword });
const [{ n } = { n: 0 }] = await rekeyed.query<{ n: number }>('SELECT count(*) AS n FROM notes');
const [{ quick_check } = { quick_check: '?' }] = await rekeyed.query<{ quick_check: string }>('PRAGMA quick_check');
await rekeyed.close();
const oldRefused = await openDatabase(file, { password }).then((d) => (d.close(), false), () => true);
say(`password changed: ${n} notes readable with the new one, quick_check ${quick_check}, old password refused: ${oldRefused ? 'yes' : 'NO'}`);
if (!oldRefused || plainHeader || leaks || quick_check !== 'ok') process.exitCode = 1;
say(process.exitCode ? 'FAILED' : 'done');
