/**
 * Storing an object so that it appears whole or not at all: one PUT up to
 * the multipart threshold, else a multipart upload whose parts are read from
 * `source` a few at a time (memory: concurrency × part size), each with
 * Content-MD5, and which is completed only when every part is in — or
 * aborted.
 *
 * Resuming: an upload of the same key that a run could not finish nor abort
 * (its process died, or the store went away mid-upload) is taken up again.
 * Each of our parts is still read and hashed, but one the store already
 * holds with the same size and MD5 is not sent again; any other is sent
 * over it. The completion names every part with our MD5s, so an upload
 * holding other bytes cannot complete as ours.
 */
import { md5 } from 'hash-wasm';
import { InvalidArgumentError } from '../../engine/errors.ts';
import type { PartResult, S3Client } from './client.ts';
import { fromHex, toHex } from '../../engine/bytes.ts';

export type Source = (offset: number, length: number) => Promise<Uint8Array>;

export interface UploadOptions {
  /** Bodies up to this size go in one PUT; default 16 MiB. */
  multipartThreshold?: number;
  /** Default 8 MiB; S3 wants at least 5 MiB for every part but the last. Grown when the parts would be too many. */
  partSize?: number;
  /** Parts in flight at once; default 3. */
  concurrency?: number;
  /** Part count limit; default 1000 (Swift's; AWS allows 10000). */
  maxParts?: number;
  /** Take up an open upload of the same key (default true). */
  resume?: boolean;
  onProgress?: (done: number) => void;
}

const MIB = 1 << 20;

function base64(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

/** Content-MD5's value (base64 of the raw digest) and the digest itself. */
export async function contentMd5(body: Uint8Array): Promise<{ header: string; raw: Uint8Array }> {
  const raw = fromHex(await md5(body));
  return { header: base64(raw), raw };
}

async function readExactly(source: Source, offset: number, length: number): Promise<Uint8Array> {
  const bytes = await source(offset, length);
  if (bytes.length !== length) throw new InvalidArgumentError(`the source gave ${bytes.length} bytes at offset ${offset}, expected ${length}`);
  return bytes;
}

/** Uploads `size` bytes from `source` to `key`. Returns the ETag. */
export async function uploadObject(client: S3Client, key: string, size: number, source: Source, options: UploadOptions = {}): Promise<string> {
  if (!Number.isSafeInteger(size) || size < 0) throw new InvalidArgumentError(`bad size ${size}`);
  if (size <= (options.multipartThreshold ?? 16 * MIB)) {
    const body = await readExactly(source, 0, size);
    const etag = await client.putObject(key, body, (await contentMd5(body)).header);
    options.onProgress?.(size);
    return etag;
  }
  const maxParts = options.maxParts ?? 1000;
  const partSize = Math.max(options.partSize ?? 8 * MIB, 5 * MIB, Math.ceil(size / maxParts));
  const count = Math.ceil(size / partSize);
  const open = options.resume === false ? undefined : await openUpload(client, key);
  const uploadId = open?.uploadId ?? (await client.createMultipartUpload(key));
  const held = open?.parts ?? new Map<number, { etag: string; size: number }>();
  const parts: PartResult[] = [];
  const digests: Uint8Array[] = [];
  let next = 0;
  let done = 0;
  let error: unknown = null;
  const worker = async () => {
    while (error === null && next < count) {
      const index = next++;
      try {
        const offset = index * partSize;
        const body = await readExactly(source, offset, Math.min(partSize, size - offset));
        const md5 = await contentMd5(body);
        if (error !== null) return;
        const there = held.get(index + 1);
        const etag = there && there.size === body.length && there.etag === `"${toHex(md5.raw)}"`
          ? there.etag
          : await client.uploadPart(key, uploadId, index + 1, body, md5.header);
        parts[index] = { partNumber: index + 1, etag };
        digests[index] = md5.raw;
        done += body.length;
        options.onProgress?.(done);
      } catch (e) {
        error ??= e;
      }
    }
  };
  // Every worker stops before the abort, so no part lands after it.
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 3, count) }, worker));
  try {
    if (error !== null) throw error;
    return await completeOrConfirm(client, key, uploadId, parts, digests);
  } catch (e) {
    await client.abortMultipartUpload(key, uploadId).catch(() => {});
    throw e;
  }
}

/** The newest open upload of exactly `key`, with its parts; none when the store will not say. */
async function openUpload(client: S3Client, key: string): Promise<{ uploadId: string; parts: Map<number, { etag: string; size: number }> } | undefined> {
  try {
    const [newest] = (await client.listMultipartUploads(key)).filter((u) => u.key === key).sort((a, b) => b.initiatedMs - a.initiatedMs);
    if (!newest) return undefined;
    const parts = new Map((await client.listParts(key, newest.uploadId)).map((p) => [p.partNumber, { etag: p.etag, size: p.size }]));
    return { uploadId: newest.uploadId, parts };
  } catch {
    return undefined; // a store that cannot list uploads or parts gets a fresh upload
  }
}

/** The ETag S3 gives a multipart object: MD5 of the parts' raw MD5s, a dash, the part count. */
export async function multipartEtag(digests: Uint8Array[]): Promise<string> {
  const all = new Uint8Array(digests.length * 16);
  digests.forEach((d, i) => all.set(d, i * 16));
  return `"${await md5(all)}-${digests.length}"`;
}

async function completeOrConfirm(client: S3Client, key: string, uploadId: string, parts: PartResult[], digests: Uint8Array[]): Promise<string> {
  try {
    return await client.completeMultipartUpload(key, uploadId, parts);
  } catch (e) {
    // The completion may have happened with its answer lost, and a retry then finds no upload:
    // the object is ours if its ETag is the one these parts make.
    const head = await client.headObject(key).catch(() => null);
    if (head && head.etag === (await multipartEtag(digests))) return head.etag;
    throw e;
  }
}
