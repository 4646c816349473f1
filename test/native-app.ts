/**
 * The application that owns a database, for tests that back it up while it
 * runs: real native SQLCipher in a child process (fixtures/native-writer.mjs)
 * keeping a ledger, and the native check of that ledger.
 */
import path from 'node:path';
import { spawn } from 'node:child_process';
import { NodeFileStore, sqlcipher4, type KeyProfile } from '../src/node.ts';
import { fixtureCommand, nativeQuery, passphraseKey } from './helpers.ts';

const here = import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname);
export const PASSWORD = 'live-source pw';
/** 100 accounts of 1000: what every consistent state of the ledger sums to. */
export const TOTAL = 100 * 1000;

/** The native app: a child process running real SQLCipher (always Node: the addon is Node's). */
export function nativeApp(db: string, mode: 'wal' | 'delete', profile: KeyProfile, action: 'write' | 'hold') {
  return appProcess('node', [path.join(here, 'fixtures', 'native-writer.mjs'), db, mode, profile.name, action]);
}

/** The same ledger written by another cipherkeep process (the app using the library), under this test's runtime. */
export function cipherkeepApp(db: string, mode: 'wal' | 'delete') {
  return appProcess(...fixtureCommand('cipherkeep-writer.ts', [db, mode]));
}

function appProcess(command: string, args: string[]) {
  const child = spawn(command, args, { env: { ...process.env, CK_PASSWORD: PASSWORD }, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    ready: (async () => {
      while (!out.includes('ready')) {
        if (child.exitCode !== null) throw new Error(`native app exited: ${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    async stop(): Promise<{ commits: number; errors: string[] }> {
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(out.slice(out.indexOf('{')));
    },
  };
}

/** The pragmas that open a file of this profile natively (the reference app's key comes from the `.salt` beside `saltOf`). */
async function nativeKey(profile: KeyProfile, saltOf: string): Promise<string[]> {
  if (profile === sqlcipher4) return passphraseKey(PASSWORD);
  const { password } = await profile.keyFor({ password: PASSWORD }, new NodeFileStore(), saltOf);
  return [`key = "${password}"`, 'cipher_page_size = 16384'];
}

/** The ledger invariant, checked natively: the total never changes and the log has no gaps. */
export async function ledger(file: string, profile: KeyProfile) {
  const key = await nativeKey(profile, file);
  const [check] = nativeQuery(file, key, 'PRAGMA quick_check') as Array<{ quick_check: string }>;
  const [sum] = nativeQuery(file, key, 'SELECT sum(balance) AS total FROM accounts') as Array<{ total: number }>;
  const [log] = nativeQuery(file, key, 'SELECT count(*) AS n, coalesce(max(n), 0) AS top FROM log') as Array<{ n: number; top: number }>;
  return { ok: check?.quick_check === 'ok', total: sum?.total, rows: log!.n, gapless: log!.n === log!.top };
}

