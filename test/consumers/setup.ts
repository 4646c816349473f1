/**
 * Shared by the consumer tests: the package as npm packs it, and throwaway
 * projects that install that tarball the way users do (npm or pnpm), outside
 * this repository so nothing resolves through its node_modules.
 *
 * Installs are cached in ~/.cache/cipherkeep-consumers (or
 * $CIPHERKEEP_CONSUMER_CACHE): the tarball is keyed by a hash of everything
 * that goes into it, and each project by the tarball's hash plus its own
 * manifest, so an unchanged package is neither rebuilt nor reinstalled.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { chromium } from '@playwright/test';

export const root = path.resolve(import.meta.dirname, '../..');
export const fixtures = path.join(import.meta.dirname, 'fixtures');
export const cacheRoot = process.env.CIPHERKEEP_CONSUMER_CACHE ?? path.join(os.homedir(), '.cache', 'cipherkeep-consumers');
export const bin = (name: string) => path.join(root, 'node_modules/.bin', name);

const sha = (...parts: Array<string | Buffer>) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex').slice(0, 16);
};

/** Runs a command; on failure the error carries its output. */
export function run(cmd: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeout?: number; input?: string }): string {
  try {
    return execFileSync(cmd, args, { cwd: options.cwd, env: options.env ?? process.env, timeout: options.timeout ?? 180_000, input: options.input, stdio: 'pipe', encoding: 'utf8' });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; status?: number | null; message: string };
    throw Object.assign(new Error(`${cmd} ${args.join(' ')} failed (exit status ${err.status}): ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`), { status: err.status });
  }
}

function inputsOfPackage(): string[] {
  const files = ['package.json', 'package-lock.json', 'README.md', 'LICENSE', 'tsconfig.json', 'tsconfig.build.json', 'scripts/build.mjs', 'bin/cipherkeep.mjs'];
  for (const f of fs.readdirSync(path.join(root, 'src'), { recursive: true, encoding: 'utf8' })) files.push(path.join('src', f));
  return files.filter((f) => fs.statSync(path.join(root, f)).isFile()).sort();
}

let packed: { tarball: string; hash: string } | undefined;

/** `npm pack` of this repository (its prepack runs the build), reused while nothing that goes into it changed. */
export function packOnce(): { tarball: string; hash: string } {
  if (packed) return packed;
  const key = sha(...inputsOfPackage().flatMap((f) => [f, fs.readFileSync(path.join(root, f))]));
  const dir = path.join(cacheRoot, 'tarballs', key);
  let tarball = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.tgz')) : undefined;
  if (!tarball) {
    fs.rmSync(path.join(cacheRoot, 'tarballs'), { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    const out = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, timeout: 300_000 }).replace(/^[^[]*/, ''));
    tarball = out[0].filename as string;
  }
  const file = path.join(dir, tarball);
  packed = { tarball: file, hash: sha(fs.readFileSync(file)) };
  return packed;
}

/**
 * A project that depends on the packed tarball (plus `extra` packages),
 * installed with npm or pnpm; reinstalled only when the tarball or the
 * manifest changed. `files` are (re)written on every call.
 */
export function consumerProject(name: string, options: { manager?: 'npm' | 'pnpm'; extra?: Record<string, string>; files?: Record<string, string> } = {}): string {
  const { tarball, hash } = packOnce();
  const manager = options.manager ?? 'npm';
  const manifest = { name: `consumer-${name}`, private: true, type: 'module', dependencies: { cipherkeep: `file:${tarball}`, ...options.extra } };
  const dir = path.join(cacheRoot, 'projects', `${name}-${sha(hash, manager, JSON.stringify(manifest))}`);
  if (!fs.existsSync(path.join(dir, '.installed'))) {
    for (const old of fs.existsSync(path.dirname(dir)) ? fs.readdirSync(path.dirname(dir)) : []) {
      if (old.startsWith(`${name}-`)) fs.rmSync(path.join(path.dirname(dir), old), { recursive: true, force: true });
    }
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    if (manager === 'npm') run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, timeout: 300_000 });
    else run(bin('pnpm'), ['install', '--prefer-offline', '--config.confirm-modules-purge=false'], { cwd: dir, timeout: 300_000, env: { ...process.env, CI: 'true' } });
    fs.writeFileSync(path.join(dir, '.installed'), new Date().toISOString());
  }
  for (const [file, text] of Object.entries(options.files ?? {})) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return dir;
}

export const fixture = (file: string) => fs.readFileSync(path.join(fixtures, file), 'utf8');

const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.css': 'text/css', '.map': 'application/json' };

/**
 * Serves `dir` on loopback (OPFS needs a secure context; 127.0.0.1 is one),
 * opens its index.html in headless Chromium (a fresh profile), and returns
 * what the page put in `window.result`, with the requests it made.
 */
export async function runPage(dir: string, timeoutMs = 90_000): Promise<{ result: any; requests: string[]; console: string[] }> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    requests.push(url.pathname);
    let file = path.join(dir, path.normalize(decodeURIComponent(url.pathname)).replace(/^(\.\.[/\\])+/, ''));
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file.startsWith(dir) || !fs.existsSync(file)) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    return { ...(await openPage(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, timeoutMs)), requests };
  } finally {
    server.close();
    server.closeAllConnections();
  }
}

/** Opens `url` in headless Chromium (a fresh profile) and returns what the page put in `window.result`. */
export async function openPage(url: string, timeoutMs = 90_000): Promise<{ result: any; console: string[] }> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 60_000,
  });
  const messages: string[] = [];
  try {
    const page = await browser.newPage();
    page.on('console', (m) => void messages.push(`${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => void messages.push(`pageerror: ${e.message}`));
    await page.goto(url, { timeout: 30_000 });
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      page.evaluate(() => (globalThis as { result?: Promise<unknown> }).result),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the page gave no result within ${timeoutMs} ms:\n${messages.join('\n')}`)), timeoutMs);
      }),
    ]).finally(() => clearTimeout(timer));
    return { result, console: messages };
  } finally {
    await browser.close();
  }
}
