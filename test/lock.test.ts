/**
 * The cross-process backup lock: never two holders, stale takeover by many
 * processes at once included, and a holder paused past the stale window
 * finds out before it changes anything.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { BackupService, openDatabase, sqlcipher4 } from '../src/node.ts';
import { fixtureCommand, tempDir } from './helpers.ts';

const TORTURE = !!process.env.TORTURE;
const FAST = { ...sqlcipher4, cipher: { kdfIterations: 1000 } };

function run(args: string[], env: Record<string, string>) {
  const proc = spawn(...fixtureCommand('lock-child.ts', args), {
    env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  return {
    proc,
    output: () => out,
    done: new Promise<Record<string, unknown>>((resolve, reject) =>
      proc.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`child exited ${code}: ${out}`))))),
  };
}

/** A lock whose holder is gone: generation 5, its holder a dead process or a live one that stopped refreshing it. */
function staleLock(lockPath: string, deadProcess: boolean) {
  fs.mkdirSync(lockPath);
  const file = path.join(lockPath, '5');
  fs.writeFileSync(file, JSON.stringify({ pid: deadProcess ? 2 ** 22 + 4321 : process.pid, host: os.hostname() }));
  const old = new Date(Date.now() - 3_600_000);
  fs.utimesSync(file, old, old);
}

async function makeDb(file: string) {
  const db = await openDatabase(file, { password: 'pw', create: true, cipher: FAST.cipher });
  await db.exec("CREATE TABLE t (v); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 30000) INSERT INTO t SELECT hex(randomblob(60)) FROM c");
  await db.close();
}

describe('the cross-process backup lock', { timeout: 600_000 }, () => {
  it('many processes taking over a stale lock at once: one holder at a time, always', { timeout: 300_000 }, async () => {
    const trials = TORTURE ? 20 : 3;
    const racers = TORTURE ? 16 : 12;
    let entries = 0;
    for (let t = 0; t < trials; t++) {
      const dir = tempDir('lockrace');
      const lockPath = path.join(dir, 'app.db.backup-lock');
      const log = path.join(dir, 'log');
      fs.writeFileSync(log, '');
      staleLock(lockPath, t % 2 === 0);
      const go = String(Date.now() + 2500 + racers * 150);
      const children = Array.from({ length: racers }, () => run(['lock', lockPath, log], { CK_GO: go, CK_STALE_MS: '2000' }));
      for (const c of children) assert.deepEqual(await c.done, { ok: true });
      const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
      assert.equal(lines.length, racers * 2);
      for (let i = 0; i < lines.length; i += 2) {
        const [enter, leave] = [lines[i]!.split(' '), lines[i + 1]!.split(' ')];
        assert.deepEqual([enter[0], leave[0], leave[1]], ['enter', 'leave', enter[1]], `trial ${t}: two holders at once:\n${lines.join('\n')}`);
      }
      entries += racers;
    }
    console.log(`figures: lock race ${trials} trials x ${racers} processes, ${entries} locked sections, 0 overlaps`);
  });

  it('many processes backing up over a stale lock: backups equal successes, none missing, all verify', { timeout: 300_000 }, async () => {
    const dir = tempDir('lockbackups');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const backups = path.join(dir, 'backups');
    staleLock(`${db}.backup-lock`, false);
    const go = String(Date.now() + 4000);
    const children = Array.from({ length: 12 }, () => run(['backup', db, backups], { CK_GO: go, CK_STALE_MS: '5000', CK_PASSWORD: 'pw' }));
    const results = await Promise.all(children.map((c) => c.done)) as Array<{ success: boolean; error?: string; backupPath?: string }>;
    for (const r of results) assert.equal(r.success, true, r.error);
    const files = fs.readdirSync(backups);
    assert.deepEqual(files.filter((n) => n.includes('.tmp')), []);
    assert.equal(files.filter((n) => n.endsWith('.db')).length, 12);
    assert.equal(new Set(results.map((r) => r.backupPath)).size, 12);
    const svc = new BackupService({ databasePath: db, backupDir: backups, password: 'pw', keyProfile: FAST });
    for (const b of await svc.listBackups()) assert.equal((await svc.verifyBackup(b.path)).ok, true);
  });

  it('a holder paused past the stale window is fenced: the next holder succeeds, the paused one fails honestly, no .tmp is left', { timeout: 120_000 }, async () => {
    const dir = tempDir('paused');
    const db = path.join(dir, 'app.db');
    await makeDb(db);
    const backups = path.join(dir, 'backups');
    const paused = run(['backup', db, backups], { CK_STALE_MS: '300', CK_PASSWORD: 'pw', CK_SAY_EXPORTING: '1' });
    while (!paused.output().includes('exporting')) await new Promise((r) => setTimeout(r, 5));
    process.kill(paused.proc.pid!, 'SIGSTOP');
    try {
      await new Promise((r) => setTimeout(r, 1200));
      const next = await new BackupService({ databasePath: db, backupDir: backups, password: 'pw', keyProfile: FAST, lockStaleMs: 300, maxBackups: 10 }).createBackup({ force: true });
      assert.equal(next.success, true, next.error);
      assert.ok(fs.readdirSync(backups).some((n) => n.includes('.tmp')), "the paused holder's .tmp was left alone while it may be alive");
    } finally {
      process.kill(paused.proc.pid!, 'SIGCONT');
    }
    const late = (await paused.done) as { success: boolean; errorCode?: string };
    assert.deepEqual([late.success, late.errorCode], [false, 'LOCK_LOST']);
    const files = fs.readdirSync(backups);
    assert.deepEqual(files.filter((n) => n.includes('.tmp')), [], 'no .tmp left');
    assert.equal(files.filter((n) => n.endsWith('.db')).length, 1);
    const svc = new BackupService({ databasePath: db, backupDir: backups, password: 'pw', keyProfile: FAST });
    for (const b of await svc.listBackups()) assert.equal((await svc.verifyBackup(b.path)).ok, true);
  });
});
