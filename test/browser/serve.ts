/** Builds the browser bundles and serves them on 127.0.0.1 (OPFS needs a secure context; localhost is one). */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { buildBrowser } from '../../examples/browser/build.ts';

const dir = process.env.NO_BUILD ? (await import("../../examples/browser/build.ts")).outDir : await buildBrowser();
const port = Number(process.env.PORT ?? 4173);
const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm', '.map': 'application/json', '.css': 'text/css' };

http
  .createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // The benchmark serves its databases from /bench-data/ to load them into OPFS.
    const extra = process.env.BENCH_DATA_DIR && url.pathname.startsWith('/bench-data/') ? process.env.BENCH_DATA_DIR : null;
    const root = extra ?? dir;
    const rel = extra ? url.pathname.slice('/bench-data'.length) : url.pathname;
    let file = path.join(root, path.normalize(decodeURIComponent(rel)).replace(/^(\.\.[/\\])+/, ''));
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!file.startsWith(root) || !fs.existsSync(file)) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    fs.createReadStream(file).pipe(res);
  })
  .listen(port, '127.0.0.1', () => console.log(`serving ${dir} on http://127.0.0.1:${port}`));
