/**
 * The page side of the browser S3 tests: the target contract runs here, in
 * Chromium, against Swift through presigned URLs. The page holds no
 * credentials: each request is signed by the test server's /presign.
 */
import { S3Target } from '../../src/targets/s3/index.ts';
import { targetCases } from '../contract/target.contract.ts';

const MIB = 1 << 20;

async function presign(method: string, key: string, request: unknown) {
  const res = await fetch('/presign', { method: 'POST', body: JSON.stringify({ method, key, request }) });
  if (!res.ok) throw new Error(`presign refused: ${await res.text()}`);
  return res.json();
}

let serial = 0;

declare global {
  interface Window {
    s3page: {
      runCase(name: string, prefix: string): Promise<string>;
      /** A put and a read through a signer that signs with the wrong secret: what the page sees. */
      deniedCode(prefix: string): Promise<string>;
    };
  }
}

window.s3page = {
  async runCase(name, prefix) {
    const c = targetCases.find((x) => x.name === name);
    if (!c) throw new Error(`no case ${name}`);
    const fresh = async () => new S3Target({ presign, prefix: `${prefix}${serial++}/`, upload: { multipartThreshold: 5 * MIB, partSize: 5 * MIB }, listPageSize: 3 });
    await c.run({ fresh, largeSize: 12 * MIB });
    return 'ok';
  },
  async deniedCode(prefix) {
    const wrong = (method: string, key: string, request: unknown) =>
      fetch('/presign?wrong=1', { method: 'POST', body: JSON.stringify({ method, key, request }) }).then((r) => r.json());
    const t = new S3Target({ presign: wrong, prefix, retry: { attempts: 2, baseDelayMs: 10 } });
    try {
      await t.list('');
      return 'resolved';
    } catch (e) {
      return `${(e as { code?: string }).code}: ${(e as Error).message}`;
    }
  },
};
document.title = 'ready';
