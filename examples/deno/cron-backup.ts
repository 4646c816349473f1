/**
 * A long-running Deno process that backs up a database every night with
 * Deno.cron (Deno's built-in scheduler, still behind --unstable-cron):
 *   CIPHERKEEP_PASSWORD=... deno run -A --unstable-cron examples/deno/cron-backup.ts app.db backups
 * `--once` runs the job once and exits (what cron and systemd timers do; see
 * examples/schedule/). The service's daily limit makes a second run on the
 * same day a no-op, so an overlapping or repeated trigger costs nothing.
 * It imports the package as an app would (in this repository: `npm run build`).
 */
import { BackupService } from 'cipherkeep/node';

const once = Deno.args.includes('--once');
const [databasePath = 'app.db', backupDir = 'backups'] = Deno.args.filter((a) => a !== '--once');
const password = Deno.env.get('CIPHERKEEP_PASSWORD');
if (!password) {
  console.error('set CIPHERKEEP_PASSWORD');
  Deno.exit(2);
}
const backups = new BackupService({ databasePath, password, backupDir, maxBackups: 7 });

async function job(): Promise<boolean> {
  const r = await backups.createBackup();
  if (!r.success) console.error(`backup FAILED (${r.errorCode}): ${r.error}`);
  else console.log(r.existing ? `today's backup exists: ${r.backupPath}` : `backed up to ${r.backupPath} (${r.sizeBytes} bytes)`);
  return r.success;
}

if (once) {
  Deno.exit((await job()) ? 0 : 1);
} else {
  // Every day at 03:15 UTC; a failure is logged and tried again the next night.
  Deno.cron('cipherkeep nightly backup', '15 3 * * *', async () => void (await job()));
}
