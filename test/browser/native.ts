/** What browser specs share: the test harness page, and native SQLCipher reading what the page made. */
import { expect, type Page } from '@playwright/test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import NativeDatabase from '@signalapp/sqlcipher';

export const bytesOf = (base64: string) => new Uint8Array(Buffer.from(base64, 'base64'));

/** Runs `sql` in native SQLCipher over a copy of `bytes` opened with `password`. */
export function nativeRows(bytes: Uint8Array, password: string, sql: string): unknown[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-browser-'));
  try {
    fs.writeFileSync(path.join(dir, 'x.db'), bytes);
    const db = new NativeDatabase(path.join(dir, 'x.db'));
    try {
      db.pragma(`key = '${password}'`);
      return db.prepare(sql).all();
    } finally {
      db.close();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Opens the harness page (test/browser/harness.ts) and waits until it is ready. */
export async function harness(page: Page): Promise<void> {
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto('/harness/');
  await expect(page.locator('#status')).toHaveText('ready');
}
