/** A BackupTarget over S3-compatible storage: objects `<prefix><name>` in one bucket. */
import { InvalidArgumentError } from '../../engine/errors.ts';
import type { BackupTarget, TargetObject } from '../target.ts';
import { S3Client, type ObjectInfo, type S3ClientOptions } from './client.ts';
import { parseS3Url, s3OptionsFromEnv } from './config.ts';
import { uploadObject, type Source, type UploadOptions } from './upload.ts';

export interface S3TargetOptions extends S3ClientOptions {
  /** Key prefix for every object ('' or ending in '/'; one is added if missing). */
  prefix?: string;
  upload?: Omit<UploadOptions, 'onProgress'>;
  /** ListObjectsV2 page size; default 1000. */
  listPageSize?: number;
}

/** Names are single path segments of printable characters. */
function checkName(name: string): void {
  if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || /[\u0000-\u001f\u007f]/.test(name) || name.length > 512) {
    throw new InvalidArgumentError(`not a valid object name: ${JSON.stringify(name)}`);
  }
}

export class S3Target implements BackupTarget {
  readonly id: string;
  readonly client: S3Client;
  readonly prefix: string;
  readonly #options: S3TargetOptions;

  constructor(options: S3TargetOptions) {
    const p = options.prefix ?? '';
    this.prefix = p === '' || p.endsWith('/') ? p : `${p}/`;
    this.client = new S3Client(options);
    this.#options = options;
    this.id = `${this.client.label}${options.bucket ? `/${this.prefix}` : ` ${this.prefix}`}`;
  }

  /** From `s3://bucket/prefix` and an environment record (AWS_* variables), plus any overrides. */
  static fromUrl(url: string, env: Record<string, string | undefined>, overrides: Partial<S3TargetOptions> = {}): S3Target {
    const { bucket, prefix } = parseS3Url(url);
    const fromEnv = s3OptionsFromEnv(env);
    if (!fromEnv.credentials && !overrides.credentials && !overrides.presign) {
      throw new InvalidArgumentError(`${url}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)`);
    }
    return new S3Target({ ...fromEnv, bucket, prefix, ...overrides });
  }

  #key(name: string): string {
    checkName(name);
    return this.prefix + name;
  }

  #object(info: ObjectInfo): TargetObject {
    return { name: info.key.slice(this.prefix.length), size: info.size, mtimeMs: info.mtimeMs };
  }

  async list(prefix: string): Promise<TargetObject[]> {
    if (prefix.includes('/')) throw new InvalidArgumentError(`not a valid name prefix: ${JSON.stringify(prefix)}`);
    const all = await this.client.listObjects(this.prefix + prefix, this.#options.listPageSize);
    return all
      .filter((o) => !o.key.slice(this.prefix.length).includes('/'))
      .map((o) => this.#object(o))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(name: string): Promise<TargetObject | null> {
    const info = await this.client.headObject(this.#key(name));
    return info && this.#object(info);
  }

  async read(name: string, offset: number, length: number): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new InvalidArgumentError(`bad range ${offset}+${length}`);
    }
    return this.client.getObject(this.#key(name), { offset, length });
  }

  async put(name: string, size: number, source: Source, onProgress?: (done: number) => void): Promise<void> {
    await uploadObject(this.client, this.#key(name), size, source, { ...this.#options.upload, onProgress });
  }

  /** S3's DELETE does not say whether the object existed, so this asks first. */
  async remove(name: string): Promise<boolean> {
    const key = this.#key(name);
    const existed = (await this.client.headObject(key)) !== null;
    await this.client.deleteObject(key);
    return existed;
  }

  check(): Promise<void> {
    return this.client.headBucket(this.prefix);
  }

  cleanup(now = new Date()): Promise<number> {
    return this.abortStaleUploads(24 * 3600_000, now.getTime());
  }

  /**
   * Aborts multipart uploads under the prefix begun more than `olderThanMs`
   * ago (a process that died mid-upload leaves its parts stored, and billed,
   * until then). Returns how many it aborted.
   */
  async abortStaleUploads(olderThanMs = 24 * 3600_000, now = Date.now()): Promise<number> {
    const stale = (await this.client.listMultipartUploads(this.prefix)).filter((u) => now - u.initiatedMs > olderThanMs);
    for (const u of stale) await this.client.abortMultipartUpload(u.key, u.uploadId);
    return stale.length;
  }
}
