/**
 * Example page: an encrypted notes database in OPFS, run in a worker, with
 * backups. Settings (how many backups to keep) persist in IndexedDB through
 * idb-keyval; the password is never stored.
 */
import { get, set } from 'idb-keyval';
import { downloadBackup, openCipherkeep, type KeepClient } from '../../src/browser.ts';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const log = (line: string) => ($('log').textContent = `${new Date().toLocaleTimeString()}  ${line}\n${$('log').textContent}`.slice(0, 4000));
const progress = (p: { bytesDone: number; bytesTotal: number; phase: string }) => {
  const bar = $<HTMLProgressElement>('progress');
  bar.max = p.bytesTotal || 1;
  bar.value = p.bytesDone;
  bar.title = p.phase;
};
const plural = (count: number, noun: string) => `${count} ${noun}${count === 1 ? '' : 's'}`;
let keep: KeepClient;

async function refresh() {
  const [{ n }] = (await keep.query('SELECT count(*) AS n FROM notes')) as [{ n: number }];
  $('note-count').textContent = String(n);
  const rows = await keep.listBackups();
  $('backups').replaceChildren(
    ...rows.map((b) => {
      const tr = document.createElement('tr');
      for (const text of [b.filename, `${(b.sizeBytes / 1024).toFixed(0)} KiB`, b.createdAt.replace('T', ' ').slice(0, 19), b.verifiedAt ? 'yes' : '—']) {
        tr.append(Object.assign(document.createElement('td'), { textContent: text }));
      }
      return tr;
    }),
  );
}

async function latest(): Promise<string | null> {
  const b = await keep.getLatestBackup();
  if (!b) log('no backup yet');
  return b?.path ?? null;
}

function on(id: string, action: () => Promise<unknown>) {
  $(id).addEventListener('click', async () => {
    document.querySelectorAll('button').forEach((b) => (b.disabled = true));
    try {
      await action();
      await refresh();
    } catch (e) {
      log(`${(e as Error).name}: ${(e as Error).message}`);
    } finally {
      document.querySelectorAll('button').forEach((b) => (b.disabled = false));
    }
  });
}

$<HTMLInputElement>('max-backups').value = String((await get<number>('example:maxBackups')) ?? 3);

on('open', async () => {
  const maxBackups = Number($<HTMLInputElement>('max-backups').value);
  await set('example:maxBackups', maxBackups);
  keep = await openCipherkeep({
    worker: new URL('../worker.js', import.meta.url),
    wasmUrl: new URL('../mc-wa-sqlite.wasm', import.meta.url).href,
    databasePath: '/notes.db', backupDir: '/backups', password: $<HTMLInputElement>('password').value, create: true, maxBackups,
  });
  await keep.exec('CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL, created TEXT DEFAULT CURRENT_TIMESTAMP)');
  $('unlock').classList.add('hidden');
  $('app').classList.remove('hidden');
  log('database open');
});
on('add', async () => {
  await keep.run('INSERT INTO notes (body) VALUES (?)', [$<HTMLInputElement>('note').value || 'empty note']);
  $<HTMLInputElement>('note').value = '';
});
on('add-many', async () => {
  await keep.exec("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 5000) INSERT INTO notes (body) SELECT 'note ' || i || ' ' || hex(randomblob(64)) FROM c");
});
on('backup', async () => {
  const r = await keep.createBackup({}, progress);
  log(r.success ? `${r.existing ? 'already backed up today' : 'backed up'}: ${r.backupPath} (${r.sizeBytes} bytes)` : `backup failed: ${r.error}`);
});
on('verify', async () => {
  const path = await latest();
  if (path) {
    const r = await keep.verifyBackup(path, progress);
    log(r.ok ? `verified ${path}: ${plural(r.pages, 'page')}, ${plural(r.tables, 'table')}` : `verification FAILED (${r.reason}): ${r.detail}`);
  }
});
on('purge-refresh', async () => {
  const r = await keep.purgeAndRefresh(progress);
  log(r.success ? `purged and refreshed: only ${r.backupPath} remains` : `purge and refresh failed: ${r.error}`);
});
on('change-password', async () => {
  const r = await keep.changePassword({ password: $<HTMLInputElement>('new-password').value }, progress);
  log(r.success ? 'password changed; every backup is now under the new password' : `password change: ${r.error}`);
});
on('download', async () => {
  const path = await latest();
  if (path) {
    // A plain download link; pass picker: true to let the user choose where (File System Access API).
    await downloadBackup(keep, path, { picker: false });
    log(`downloaded ${path}`);
  }
});
on('restore', async () => {
  const path = await latest();
  if (path) {
    const r = await keep.restoreBackup(path, progress);
    log(r.success ? `restored from ${path}; the replaced database is kept as ${r.preRestorePath}` : `restore failed: ${r.error}`);
  }
});
$<HTMLInputElement>('import').addEventListener('change', async (event) => {
  const file = (event.target as HTMLInputElement).files?.[0];
  if (!file) return;
  const r = await keep.importBackup(file, progress);
  log(r.success ? `imported ${file.name} as ${r.backupPath}` : `import refused: ${r.error}`);
  await refresh();
});
