/**
 * The real object store for the S3 tests: OpenStack Swift with s3api, run by
 * scripts/swift/swift.sh. Uses the one .ci/run (or `npm run s3`) started, or
 * starts it (the caller then stops it when its file ends). In CI a Swift that cannot
 * start fails the suite; elsewhere, without Swift installed, it is skipped
 * with the reason printed.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const root = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
export const swiftScript = path.join(root, 'scripts/swift/swift.sh');
export const stateDir = process.env.SWIFT_STATE_DIR ?? path.join(root, '.swift');

export interface SwiftEnv {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  bucket: string;
  stateDir: string;
}

/** Runs the harness (start, stop proxy, status ...); rejects with its output when it fails. */
export function swift(...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [swiftScript, ...args], { timeout: 240_000, env: { ...process.env, SWIFT_STATE_DIR: stateDir } }, (err, stdout, stderr) =>
      err ? reject(new Error(`swift.sh ${args.join(' ')} failed: ${stderr || err.message}`)) : resolve(stdout + stderr));
  });
}

const readEnv = (): SwiftEnv => JSON.parse(fs.readFileSync(path.join(stateDir, 'env.json'), 'utf8'));

export type SwiftUse = { env: SwiftEnv; started: boolean; skip?: undefined } | { env?: undefined; started: false; skip: string };

/**
 * The running store's settings (`started` when this call started it: the
 * caller stops it when done), or `{ skip }` with the reason when it may be
 * skipped here.
 */
export async function useSwift(): Promise<SwiftUse> {
  if (await swift('status').then(() => true, () => false)) return { env: readEnv(), started: false };
  if (!process.env.CI && !fs.existsSync('/usr/bin/swift-proxy-server')) {
    const skip = 'OpenStack Swift is not installed: run `npm run s3` once (installs it from Debian and starts it)';
    console.log(`S3 tests skipped: ${skip}`);
    return { skip, started: false };
  }
  const t0 = Date.now();
  await swift('start');
  console.log(`# started Swift in ${Date.now() - t0} ms`);
  return { env: readEnv(), started: true };
}
