/**
 * A Deno script that backs up a database on a schedule-like loop (bounded):
 *   CIPHERKEEP_PASSWORD=... deno run -A examples/deno/scheduled-backup.ts [dir] [rounds] [interval-ms]
 * Creates <dir>/app.db on first run; each round writes a little, then backs up
 * (forced, so every round makes one) and keeps the newest three. It imports
 * the package as an app would; in this repository `cipherkeep/node` is the
 * package itself, built by `npm run build` (in an app: `npm install
 * cipherkeep`, or the specifier `npm:cipherkeep/node`).
 */
import { BackupService, openDatabase } from 'cipherkeep/node';

const [dir = 'deno-backup-demo', rounds = '3', interval = '1000'] = Deno.args;
const password = Deno.env.get('CIPHERKEEP_PASSWORD');
if (!password) {
  console.error('set CIPHERKEEP_PASSWORD');
  Deno.exit(2);
}
await Deno.mkdir(`${dir}/backups`, { recursive: true });
const databasePath = `${dir}/app.db`;
const db = await openDatabase(databasePath, { password, create: true });
await db.exec('CREATE TABLE IF NOT EXISTS ticks (at TEXT)');
const backups = new BackupService({ databasePath, password, backupDir: `${dir}/backups`, maxBackups: 3 });

for (let round = 1; round <= Number(rounds); round++) {
  await db.run('INSERT INTO ticks VALUES (?)', [new Date().toISOString()]);
  const r = await backups.createBackup({ force: true });
  console.log(`round ${round}: ${r.success ? `backed up to ${r.backupPath} (${r.sizeBytes} bytes)` : `FAILED: ${r.error}`}`);
  if (!r.success) Deno.exitCode = 1;
  if (round < Number(rounds)) await new Promise((resolve) => setTimeout(resolve, Number(interval)));
}
await db.close();
console.log(`kept: ${(await backups.listBackups()).map((b) => b.filename).join(', ')}`);
