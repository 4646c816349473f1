/**
 * Off-site upload speed: a 100 MB file to Swift (s3api) on loopback with
 * S3Target (multipart, Content-MD5 on every part), against the floor measured
 * in the same run: `curl -T` of the same file to a presigned URL (one PUT,
 * no checksum). Each of ours runs in a fresh process, so its peak RSS is its
 * own; curl's comes from /usr/bin/time. Then the backup service's whole
 * off-site step on the 100 MB workload database (bench/workloads.ts): after
 * the local backup, the upload and the read-back check on the store (ranged
 * GETs, every page's HMAC).
 *
 *   node --import tsx bench/s3.ts [--mb 100] [--reps 3] [--json]   (--mb: the file and the workload database)
 * Starts Swift (scripts/swift/swift.sh) when it is not running, and stops it after.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { S3Target, createPresigner } from '../src/targets/s3/index.ts';
import { swift, useSwift, type SwiftEnv } from '../test/swift.ts';
import { BackupService } from '../src/node.ts';
import { PASSWORD, workload } from './workloads.ts';

const { values: args } = parseArgs({ options: { mb: { type: 'string', default: '100' }, reps: { type: 'string', default: '3' }, json: { type: 'boolean', default: false }, child: { type: 'string' } } });
const status = (field: string) => Number(/(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith(field))!)![1]) / 1024;

function targetFor(env: SwiftEnv, prefix: string): S3Target {
  return new S3Target({ bucket: env.bucket, endpoint: env.endpoint, region: env.region, prefix, credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
}

if (args.child?.startsWith('send::')) {
  // Child: createBackup of a real database with one S3 target; the upload and the read-back timed from the progress events.
  const [, db, work] = args.child.split('::') as [string, string, string];
  const env = JSON.parse(process.env.BENCH_SWIFT_ENV!) as SwiftEnv;
  const service = new BackupService({ databasePath: db, password: PASSWORD, backupDir: work, targets: [{ target: targetFor(env, 'bench-send/') }] });
  const rssBeforeMB = status('VmRSS');
  let uploadAt = 0;
  let readBackAt = 0;
  const r = await service.createBackup({
    force: true,
    onProgress: (p) => {
      if (p.phase === 'upload' && !uploadAt) uploadAt = performance.now();
      if (p.phase === 'verify' && uploadAt && !readBackAt) readBackAt = performance.now();
    },
  });
  const end = performance.now();
  const sent = r.targets?.[0];
  if (!r.success || !sent?.success) throw new Error(r.error ?? sent?.error);
  console.log(JSON.stringify({ uploadMs: readBackAt - uploadAt, readBackMs: end - readBackAt, bytes: r.sizeBytes, rssBeforeMB, peakRssMB: status('VmHWM') }));
  process.exit(0);
}

if (args.child) {
  // Child: one put of the file, reading it through a FileHandle in parts.
  const [file, name] = args.child.split('::') as [string, string];
  const env = JSON.parse(process.env.BENCH_SWIFT_ENV!) as SwiftEnv;
  const target = targetFor(env, 'bench/');
  const fh = await fs.promises.open(file, 'r');
  const size = (await fh.stat()).size;
  const rssBeforeMB = status('VmRSS');
  const t0 = performance.now();
  await target.put(name, size, async (offset, length) => {
    const buf = new Uint8Array(length);
    const { bytesRead } = await fh.read(buf, 0, length, offset);
    return buf.subarray(0, bytesRead);
  });
  const ms = performance.now() - t0;
  await fh.close();
  console.log(JSON.stringify({ ms, rssBeforeMB, peakRssMB: status('VmHWM') }));
  process.exit(0);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mb = Number(args.mb);
const reps = Number(args.reps);
const store = await useSwift();
if (!store.env) {
  // Without Swift installed (outside CI): say so, as the S3 tests do.
  console.log(args.json ? JSON.stringify({ skipped: store.skip }) : `skipped: ${store.skip}`);
  process.exit(0);
}
const env = store.env;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cipherkeep-s3-bench-'));
try {
  const file = path.join(dir, 'payload.bin');
  const fd = fs.openSync(file, 'w');
  // Incompressible, like a backup's ciphertext (getRandomValues fills at most 64 KiB a call).
  for (let i = 0; i < mb; i++) fs.writeSync(fd, Buffer.concat(Array.from({ length: 16 }, () => crypto.getRandomValues(new Uint8Array(65536)))));
  fs.closeSync(fd);
  const bytes = fs.statSync(file).size;
  const presign = createPresigner({ bucket: env.bucket, endpoint: env.endpoint, region: env.region, prefix: 'bench/', credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey } });
  const ours: { ms: number; growthMB: number }[] = [];
  const curl: number[] = [];
  for (let r = 0; r < reps; r++) {
    execFileSync('sync');
    const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 's3.ts'), '--child', `${file}::ours-${r}.bin`], {
      env: { ...process.env, BENCH_SWIFT_ENV: JSON.stringify(env) }, encoding: 'utf8',
    });
    const o = JSON.parse(out.trim().split('\n').at(-1)!);
    ours.push({ ms: o.ms, growthMB: o.peakRssMB - o.rssBeforeMB });
    const { url } = await presign('PUT', `bench/curl-${r}.bin`, {});
    execFileSync('sync');
    const t0 = performance.now();
    execFileSync('curl', ['-sS', '-f', '-o', '/dev/null', '-T', file, url]);
    curl.push(performance.now() - t0);
  }
  // Once more under /usr/bin/time (when present) for curl's peak RSS.
  let curlPeakMB = NaN;
  if (fs.existsSync('/usr/bin/time')) {
    const { url } = await presign('PUT', 'bench/curl-rss.bin', {});
    const rss = execFileSync('bash', ['-c', '/usr/bin/time -f %M curl -sS -f -o /dev/null -T "$0" "$1" 2>&1 >/dev/null | tail -1', file, url], { encoding: 'utf8' });
    curlPeakMB = Number(rss.trim()) / 1024;
  }
  // The service's off-site step on the workload database of the same size.
  const db = workload(mb, 'delete');
  const sends: { uploadMs: number; readBackMs: number; growthMB: number; bytes: number }[] = [];
  for (let r = 0; r < reps; r++) {
    execFileSync('sync');
    const work = path.join(dir, `send-${r}`);
    const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(import.meta.dirname, 's3.ts'), '--child', `send::${db}::${work}`], {
      env: { ...process.env, BENCH_SWIFT_ENV: JSON.stringify(env) }, encoding: 'utf8',
    });
    const o = JSON.parse(out.trim().split('\n').at(-1)!);
    sends.push({ uploadMs: o.uploadMs, readBackMs: o.readBackMs, growthMB: o.peakRssMB - o.rssBeforeMB, bytes: o.bytes });
    fs.rmSync(work, { recursive: true, force: true });
  }
  for (const prefix of ['bench/', 'bench-send/']) {
    const target = targetFor(env, prefix);
    for (const o of await target.list('')) await target.remove(o.name);
  }

  const result = {
    mb: bytes / 1e6, reps,
    oursMs: median(ours.map((x) => x.ms)), oursRssGrowthMB: median(ours.map((x) => x.growthMB)),
    curlMs: median(curl), curlPeakRssMB: curlPeakMB,
    service: {
      mb: sends[0]!.bytes / 1e6, uploadMs: median(sends.map((x) => x.uploadMs)), readBackMs: median(sends.map((x) => x.readBackMs)),
      rssGrowthMB: median(sends.map((x) => x.growthMB)),
    },
  };
  if (args.json) console.log(JSON.stringify({ ...result, ours, curl, sends }));
  else {
    const mbps = (ms: number) => (bytes / 1e6 / (ms / 1000)).toFixed(0);
    console.log(`S3 put of ${result.mb.toFixed(0)} MB to Swift on loopback (median of ${reps}):`);
    console.log(`  S3Target (multipart 8 MiB x3, Content-MD5): ${result.oursMs.toFixed(0)} ms, ${mbps(result.oursMs)} MB/s, RSS growth ${result.oursRssGrowthMB.toFixed(0)} MB`);
    console.log(`  curl -T to a presigned URL (one PUT):      ${result.curlMs.toFixed(0)} ms, ${mbps(result.curlMs)} MB/s, curl peak RSS ${curlPeakMB.toFixed(0)} MB`);
    console.log(`  ratio ours/curl: ${(result.oursMs / result.curlMs).toFixed(2)}x`);
    const sv = result.service;
    console.log(`backup service, off-site step of the ${sv.mb.toFixed(0)} MB workload: upload ${sv.uploadMs.toFixed(0)} ms, read-back check ${sv.readBackMs.toFixed(0)} ms, RSS growth (whole backup) ${sv.rssGrowthMB.toFixed(0)} MB`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
  if (store.started) await swift('stop');
}
