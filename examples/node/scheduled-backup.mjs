/**
 * The same loop in Node, through the worker-thread API: the database and every
 * backup run in a worker, so this thread's event loop never blocks.
 *   CIPHERKEEP_PASSWORD=... node examples/node/scheduled-backup.mjs [dir] [rounds] [interval-ms]
 * Plain JavaScript importing the package as an app would; in this repository
 * `cipherkeep/node` is the package itself, built by `npm run build`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { openKeepWorker } from 'cipherkeep/node';

const [dir = 'node-backup-demo', rounds = '3', interval = '1000'] = process.argv.slice(2);
const password = process.env.CIPHERKEEP_PASSWORD;
if (!password) {
  console.error('set CIPHERKEEP_PASSWORD');
  process.exit(2);
}
fs.mkdirSync(path.join(dir, 'backups'), { recursive: true });
const keep = await openKeepWorker({ databasePath: path.join(dir, 'app.db'), backupDir: path.join(dir, 'backups'), password, create: true, maxBackups: 3 });
try {
  await keep.exec('CREATE TABLE IF NOT EXISTS ticks (at TEXT)');
  for (let round = 1; round <= Number(rounds); round++) {
    await keep.run('INSERT INTO ticks VALUES (?)', [new Date().toISOString()]);
    const r = await keep.createBackup({ force: true });
    console.log(`round ${round}: ${r.success ? `backed up to ${r.backupPath} (${r.sizeBytes} bytes)` : `FAILED: ${r.error}`}`);
    if (!r.success) process.exitCode = 1;
    if (round < Number(rounds)) await new Promise((resolve) => setTimeout(resolve, Number(interval)));
  }
  console.log(`kept: ${(await keep.listBackups()).map((b) => b.filename).join(', ')}`);
} finally {
  await keep.close();
  await keep.terminate(); // close() closes the database; the worker thread lives until terminate()
}
