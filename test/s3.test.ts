/**
 * S3-compatible storage against a real object store: OpenStack Swift 2.30
 * with its s3api middleware (scripts/swift/swift.sh), from Node and Deno.
 * The target contract with credentials and through presigned URLs, then the
 * faults: a server stopped mid-upload, 5xx bursts and dropped connections
 * (a loopback proxy in front of the real Swift), wrong credentials, a
 * missing bucket, clock skew, an unreachable endpoint, a corrupted object.
 */
import { after } from 'node:test';
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { S3Target, createPresigner, contentMd5, type S3TargetOptions } from '../src/targets/s3/index.ts';
import { patternBytes, sourceOf, targetCases } from './contract/target.contract.ts';
import { startFaultProxy } from './fixtures/fault-proxy.ts';
import { swift, useSwift } from './swift.ts';

const MIB = 1 << 20;
const store = await useSwift();
const skip = store.skip;
const env = store.env!;
/** Each run (Node, Deno) writes under its own prefix. */
const run = `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
let serial = 0;

function target(extra: Partial<S3TargetOptions> = {}): S3Target {
  return new S3Target({
    bucket: env.bucket, endpoint: env.endpoint, region: env.region,
    credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    prefix: `${run}/${serial++}`,
    upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB },
    listPageSize: 3, // pagination in every listing test
    retry: { attempts: 3, baseDelayMs: 50 },
    ...extra,
  });
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  assert.fail('expected a rejection');
}

if (!skip) {
  after(async () => {
    const all = target({ prefix: '' });
    for (const o of await all.client.listObjects(`${run}/`)) await all.client.deleteObject(o.key);
  });
}
if (store.started) after(() => swift('stop')); // after the cleanup above: hooks run in order

describe('S3Target on Swift: the target contract', { skip }, () => {
  for (const c of targetCases) it(c.name, { timeout: 60_000 }, () => c.run({ fresh: async () => target(), largeSize: 12 * MIB }));
});

describe('S3Target through presigned URLs: the contract with no credentials on the client side', { skip }, () => {
  const fresh = async () => {
    const prefix = `${run}/${serial++}/`;
    const presign = createPresigner({
      bucket: env.bucket, endpoint: env.endpoint, region: env.region, prefix,
      credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    });
    return new S3Target({ presign, prefix, upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB }, listPageSize: 3 });
  };
  for (const c of targetCases) it(c.name, { timeout: 60_000 }, () => c.run({ fresh, largeSize: 12 * MIB }));

  it('the presigner signs only object requests under its prefix and listings of it', { timeout: 10_000 }, async () => {
    const presign = createPresigner({
      bucket: env.bucket, endpoint: env.endpoint, prefix: 'mine/', credentials: { accessKeyId: env.accessKeyId, secretAccessKey: env.secretAccessKey },
    });
    const ok = await presign('PUT', 'mine/a.db', { headers: { 'content-md5': 'x' } });
    assert.match(ok.url, /X-Amz-Signature=/);
    assert.ok(!ok.url.includes(env.secretAccessKey));
    const refused = [
      () => presign('GET', 'theirs/a.db', {}), () => presign('PUT', '', {}), () => presign('GET', '', { query: { 'list-type': '2', prefix: 'theirs/' } }),
      () => presign('PUT', 'mine/a.db', { query: { acl: '' } }), () => presign('PUT', 'mine/a.db', { headers: { 'x-amz-copy-source': 'other/x' } }),
      () => presign('PATCH', 'mine/a.db', {}),
    ];
    for (const op of refused) assert.equal((await rejection(op())).code, 'INVALID_ARGUMENT');
  });
});

describe('S3 on Swift: faults', { skip }, () => {
  it('wrong credentials are TARGET_DENIED, and no message shows the secret', { timeout: 30_000 }, async () => {
    const secret = 'not-the-secret-4711';
    const wrong = target({ credentials: { accessKeyId: env.accessKeyId, secretAccessKey: secret } });
    for (const op of [() => wrong.list(''), () => wrong.put('x.db', 3, sourceOf(new Uint8Array(3))), () => wrong.read('x.db', 0, 3), () => wrong.check(), () => wrong.stat('x.db')]) {
      const e = await rejection(op());
      assert.equal(e.code, 'TARGET_DENIED', e.message);
      assert.ok(!e.message.includes(secret) && !e.message.includes('X-Amz-Signature'), e.message);
    }
    assert.match((await rejection(wrong.list(''))).message, /SignatureDoesNotMatch/);
    const unknown = target({ credentials: { accessKeyId: 'nobody:none', secretAccessKey: secret } });
    // AWS says InvalidAccessKeyId; Swift's tempauth answers SignatureDoesNotMatch for an unknown key too.
    assert.equal((await rejection(unknown.list(''))).code, 'TARGET_DENIED');
  });

  it('a bucket that does not exist is TARGET_NOT_FOUND (stat cannot tell: S3 HEAD has no body)', { timeout: 30_000 }, async () => {
    const missing = target({ bucket: 'no-such-bucket-here' });
    for (const op of [() => missing.list(''), () => missing.put('x.db', 3, sourceOf(new Uint8Array(3))), () => missing.read('x.db', 0, 3), () => missing.check()]) {
      const e = await rejection(op());
      assert.equal(e.code, 'TARGET_NOT_FOUND', e.message);
    }
    assert.match((await rejection(missing.check())).message, /bucket does not exist \(404 NoSuchBucket\)/);
    assert.equal(await missing.stat('x.db'), null);
  });

  it('clock skew is TARGET_DENIED with a message that says the clock is off, ahead or behind', { timeout: 30_000 }, async () => {
    const ahead = target({ clock: () => new Date(Date.now() + 20 * 60_000) });
    const listed = await rejection(ahead.list(''));
    assert.equal(listed.code, 'TARGET_DENIED');
    assert.match(listed.message, /RequestTimeTooSkewed: the signing clock is 1[12]\d\d s ahead of the store's/);
    // HEAD answers carry no error code: the skew comes from the store's Date header.
    const statted = await rejection(ahead.stat('x.db'));
    assert.equal(statted.code, 'TARGET_DENIED');
    assert.match(statted.message, /clock is 1[12]\d\d s ahead/);
    const behind = target({ clock: () => new Date(Date.now() - 20 * 60_000) });
    assert.match((await rejection(behind.put('x.db', 3, sourceOf(new Uint8Array(3))))).message, /clock is 1[12]\d\d s behind/);
    // Within S3's 15 minutes it works.
    await target({ clock: () => new Date(Date.now() + 5 * 60_000) }).list('');
  });

  it('an endpoint nobody listens on is TARGET_UNREACHABLE after the retries', { timeout: 30_000 }, async () => {
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const t = target({ endpoint: `http://127.0.0.1:${port}` });
    for (const op of [() => t.list(''), () => t.stat('x.db'), () => t.put('x.db', 3, sourceOf(new Uint8Array(3)))]) {
      const e = await rejection(op());
      assert.equal(e.code, 'TARGET_UNREACHABLE', e.message);
      assert.match(e.message, /no answer from the store after 3 attempts/);
    }
  });

  it('a 5xx burst and dropped connections are retried; parts are retried; a longer burst fails cleanly', { timeout: 60_000 }, async () => {
    const proxy = await startFaultProxy(env.endpoint);
    try {
      const t = target({ endpoint: proxy.url, retry: { attempts: 4, baseDelayMs: 20 } });
      const small = patternBytes(1000, 5);
      proxy.failNext(3, 503);
      await t.put('small.db', small.length, sourceOf(small));
      assert.equal(proxy.counts().faulted, 3);
      proxy.dropNext(2, (m) => m === 'GET');
      assert.deepEqual(await t.read('small.db', 0, 1000), small);
      assert.equal(proxy.counts().faulted, 5);

      const big = patternBytes(12 * MIB, 6);
      const isPart = (m: string, u: string) => m === 'PUT' && u.includes('partNumber=');
      proxy.failNext(3, 500, isPart);
      await t.put('big.db', big.length, sourceOf(big));
      assert.equal(proxy.counts().faulted, 8);
      assert.deepEqual(await t.read('big.db', 0, big.length), big);

      // More failures than attempts: the put fails, and neither an object nor an upload is left.
      proxy.failNext(1000, 503, isPart);
      const e = await rejection(t.put('failed.db', big.length, sourceOf(big)));
      assert.equal(e.code, 'TARGET_UNREACHABLE');
      assert.match(e.message, /PUT part \d: the store failed, 503 SlowDown after 4 attempts/);
      proxy.failNext(0);
      assert.equal(await t.stat('failed.db'), null);
      assert.deepEqual(await t.client.listMultipartUploads(`${t.prefix}failed`), []);

      // Starting an upload is not idempotent: it is tried once.
      const before = proxy.counts().requests;
      proxy.failNext(5, 503, (m, u) => m === 'POST' && u.includes('uploads'));
      const once = await rejection(t.put('once.db', big.length, sourceOf(big)));
      assert.equal(once.code, 'TARGET_UNREACHABLE');
      assert.equal(proxy.counts().requests - before, 1);
    } finally {
      proxy.failNext(0);
      await proxy.close();
    }
  });

  it('the server stopped mid-upload: no object appears; after a restart the leftover upload is aborted and the next put completes', { timeout: 120_000 }, async () => {
    const t = target({ upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB, concurrency: 1 }, retry: { attempts: 2, baseDelayMs: 50 } });
    const data = patternBytes(15 * MIB, 9);
    let stopped = false;
    const e = await rejection(t.put('cut.db', data.length, async (o, l) => {
      if (o >= 5 * MIB && !stopped) {
        stopped = true;
        await swift('stop', 'proxy');
      }
      return data.slice(o, o + l);
    }));
    assert.ok(stopped);
    assert.equal(e.code, 'TARGET_UNREACHABLE', e.message);
    await swift('start');
    assert.equal(await t.stat('cut.db'), null);
    assert.deepEqual(await t.list('cut'), []);
    // The abort could not reach the stopped server: the upload is still open until cleaned up.
    assert.equal((await t.client.listMultipartUploads(t.prefix)).length, 1);
    assert.equal(await t.abortStaleUploads(0), 1);
    assert.deepEqual(await t.client.listMultipartUploads(t.prefix), []);
    await t.put('cut.db', data.length, sourceOf(data));
    assert.deepEqual(await t.read('cut.db', 0, data.length), data);
  });

  it('a part retried across a server restart completes the upload', { timeout: 120_000 }, async () => {
    const t = target({ upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB, concurrency: 1 }, retry: { attempts: 40, baseDelayMs: 300, maxDelayMs: 1000 } });
    const data = patternBytes(11 * MIB, 10);
    let restart: Promise<string> | null = null;
    await t.put('resumed.db', data.length, async (o, l) => {
      if (o >= 5 * MIB && !restart) {
        await swift('stop', 'proxy');
        restart = new Promise((r) => setTimeout(r, 1000)).then(() => swift('start'));
      }
      return data.slice(o, o + l);
    });
    assert.ok(restart);
    await restart;
    assert.deepEqual(await t.read('resumed.db', 0, data.length), data);
  });

  it('a corrupted object is read back as stored, so a verifier sees it; Swift quarantines it after a whole read', { timeout: 30_000 }, async () => {
    const t = target();
    const data = patternBytes(60_000, 12);
    await t.put('flip.db', data.length, sourceOf(data));
    const objects = path.join(env.stateDir, 'srv/d1/objects');
    const file = fs.readdirSync(objects, { recursive: true }).map((f) => path.join(objects, String(f)))
      .filter((f) => f.endsWith('.data') && fs.statSync(f).size === data.length)
      .find((f) => fs.readFileSync(f).equals(Buffer.from(data)));
    assert.ok(file, 'the object file on the store');
    const fd = fs.openSync(file, 'r+');
    fs.writeSync(fd, new Uint8Array([data[30_000]! ^ 0x01]), 0, 1, 30_000);
    fs.closeSync(fd);
    const range = await t.read('flip.db', 29_990, 20);
    assert.equal(range[10], data[30_000]! ^ 0x01);
    assert.deepEqual(range.subarray(0, 10), data.subarray(29_990, 30_000));
    const whole = await t.read('flip.db', 0, data.length);
    assert.equal(whole.length, data.length);
    assert.equal(whole[30_000], data[30_000]! ^ 0x01);
    // Swift checked the MD5 while serving the whole object and quarantined it.
    assert.equal(await t.stat('flip.db'), null);
  });

  it('Content-MD5 is enforced: a body that does not match it is refused (BadDigest, TARGET_REJECTED) and nothing is stored', { timeout: 30_000 }, async () => {
    const t = target();
    const wrongMd5 = (await contentMd5(new Uint8Array([1, 2, 3]))).header;
    const e = await rejection(t.client.putObject(`${t.prefix}bad.db`, new Uint8Array([1, 2, 4]), wrongMd5));
    assert.equal(e.code, 'TARGET_REJECTED');
    assert.match(e.message, /400 BadDigest/);
    assert.equal(await t.stat('bad.db'), null);
  });

  it('an upload cut short is resumed by the next put of the name: parts the store holds are not sent again, other bytes are', { timeout: 120_000 }, async () => {
    const proxy = await startFaultProxy(env.endpoint);
    try {
      const prefix = `${run}/resume${serial++}`;
      const t = target({ endpoint: proxy.url, prefix, upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB, concurrency: 1 }, retry: { attempts: 2, baseDelayMs: 20 } });
      const partPuts = (from: number) => proxy.seen().slice(from).filter((r) => r.startsWith('PUT ') && r.includes('partNumber=')).map((r) => Number(/partNumber=(\d+)/.exec(r)![1]));
      const creates = (from: number) => proxy.seen().slice(from).filter((r) => r.startsWith('POST ') && /[?&]uploads(=|&|$)/.test(r)).length;
      // The first part goes in; then every connection is cut, the abort's too: as when the store goes away.
      const cutAfterFirstPart = (data: Uint8Array) => {
        let cut = false;
        return async (o: number, l: number) => {
          if (o >= 5 * MIB && !cut) {
            cut = true;
            proxy.dropNext(1_000_000);
          }
          return data.slice(o, o + l);
        };
      };
      const first = patternBytes(15 * MIB, 11);
      assert.equal((await rejection(t.put('r.db', first.length, cutAfterFirstPart(first)))).code, 'TARGET_UNREACHABLE');
      proxy.dropNext(0);
      assert.equal(await t.stat('r.db'), null);
      assert.equal((await t.client.listMultipartUploads(prefix)).length, 1);

      let mark = proxy.seen().length;
      await t.put('r.db', first.length, sourceOf(first));
      assert.deepEqual(partPuts(mark), [2, 3], 'part 1 was already there');
      assert.equal(creates(mark), 0, 'the open upload was taken up');
      assert.deepEqual(await t.read('r.db', 0, first.length), first);
      assert.deepEqual(await t.client.listMultipartUploads(prefix), []);

      // An open upload of other bytes under the name: nothing matches, every part is sent, and the object is ours.
      assert.equal((await rejection(t.put('s.db', first.length, cutAfterFirstPart(first)))).code, 'TARGET_UNREACHABLE');
      proxy.dropNext(0);
      const other = patternBytes(15 * MIB, 12);
      mark = proxy.seen().length;
      await t.put('s.db', other.length, sourceOf(other));
      assert.deepEqual(partPuts(mark), [1, 2, 3]);
      assert.deepEqual(await t.read('s.db', 0, other.length), other);

      // resume: false leaves an open upload alone and starts another.
      assert.equal((await rejection(t.put('u.db', first.length, cutAfterFirstPart(first)))).code, 'TARGET_UNREACHABLE');
      proxy.dropNext(0);
      const fresh = target({ endpoint: proxy.url, prefix, upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB, resume: false } });
      mark = proxy.seen().length;
      await fresh.put('u.db', first.length, sourceOf(first));
      assert.equal(creates(mark), 1);
      assert.deepEqual(partPuts(mark).sort(), [1, 2, 3]);
      assert.equal((await t.client.listMultipartUploads(prefix)).length, 1, 'the cut upload is still open, for abortStaleUploads');
      assert.equal(await t.abortStaleUploads(0, Date.now() + 1000), 1);
    } finally {
      proxy.dropNext(0);
      await proxy.close();
    }
  });

  it('abortStaleUploads aborts only uploads older than the limit', { timeout: 30_000 }, async () => {
    const t = target();
    await t.client.createMultipartUpload(`${t.prefix}left.db`);
    assert.equal(await t.abortStaleUploads(3600_000), 0);
    assert.equal(await t.abortStaleUploads(0, Date.now() + 1000), 1);
    assert.deepEqual(await t.client.listMultipartUploads(t.prefix), []);
  });
});
