/**
 * The main job, end to end on the local filesystem: create an encrypted
 * database, write and read it, show that the file is ciphertext, refuse a
 * wrong password, back it up, verify the backup, prune to the retention
 * limit, change the password (which replaces every backup), and restore.
 *
 * The password comes from CIPHERKEEP_PASSWORD or is generated; it is never printed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BackupService, openDatabase, WrongKeyError, ENGINE_PIN } from '../src/node.ts';

const dir = path.resolve(process.argv[2] ?? 'demo-data');
const file = path.join(dir, 'notes.db');
const password = process.env.CIPHERKEEP_PASSWORD ?? crypto.randomUUID();
const say = (line: string) => console.log(`cipherkeep demo: ${line}`);
const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`;

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

// Backups: export, verify, prune (retention keeps the newest maxBackups).
const backupDir = path.join(dir, 'backups');
const service = (secret: string) => new BackupService({ databasePath: file, password: secret, backupDir, maxBackups: 2, logger: { debug() {}, info: (m) => say(`  log: ${m}`), warn: (m) => say(`  warn: ${m}`) } });
let backups = service(password);
const first = await backups.createBackup();
say(`backup: ${first.success ? `${path.basename(first.backupPath!)} (${first.sizeBytes} bytes)` : `FAILED: ${first.error}`}`);
const again = await backups.createBackup();
say(`second backup today: ${again.existing ? 'skipped, one per day (returned the existing one)' : 'created'}`);
const verified = await backups.verifyBackup(first.backupPath!);
say(`verify: ${verified.ok ? `ok (${plural(verified.pages, 'page')}, ${plural(verified.tables, 'table')}, quick_check passed)` : `FAILED: ${verified.reason}`}`);
for (let i = 0; i < 2; i++) await backups.createBackup({ force: true });
const kept = await backups.listBackups();
say(`prune: forced 2 more backups, retention kept the newest ${kept.length} (maxBackups 2): ${kept.map((b) => b.filename).join(', ')}`);

// Change the password: rekey the database, replace every backup.
const newPassword = crypto.randomUUID();
const changed = await backups.changePassword({ password: newPassword });
backups = service(newPassword);
const afterChange = await backups.listBackups();
const oldCanRead = (await service(password).verifyBackup(afterChange[0]!.path)).ok;
say(`password changed: ${changed.success ? 'ok' : `FAILED: ${changed.error}`}; backups now ${afterChange.map((b) => b.filename).join(', ')}; old password opens one: ${oldCanRead ? 'YES' : 'no'}`);

const rekeyed = await openDatabase(file, { password: newPassword });
await rekeyed.run("INSERT INTO notes (body) VALUES ('written after the last backup')");
await rekeyed.close();
const restored = await backups.restoreBackup(afterChange[0]!.path);
const check = await openDatabase(file, { password: newPassword });
const [{ n } = { n: 0 }] = await check.query<{ n: number }>('SELECT count(*) AS n FROM notes');
const [{ quick_check } = { quick_check: '?' }] = await check.query<{ quick_check: string }>('PRAGMA quick_check');
await check.close();
say(`restore: ${restored.success ? `ok, ${n} notes, quick_check ${quick_check}; replaced database kept as ${path.basename(restored.preRestorePath!)}` : `FAILED: ${restored.error}`}`);
const oldRefused = await openDatabase(file, { password }).then((d) => (d.close(), false), () => true);
say(`old password refused by the database: ${oldRefused ? 'yes' : 'NO'}`);

const failed = !first.success || !again.existing || !verified.ok || kept.length !== 2 || !changed.success || oldCanRead
  || !restored.success || n !== 3 || quick_check !== 'ok' || !oldRefused || plainHeader || leaks;
if (failed) process.exitCode = 1;
say(failed ? 'FAILED' : 'done');
