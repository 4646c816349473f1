/**
 * A small S3 client over `fetch` for Node 20, Deno and browsers: the handful
 * of operations backups need, typed errors, and retries with backoff for
 * idempotent requests. Either signs with credentials (scripts, servers) or
 * asks a `presign` callback for each request (browser pages).
 */
import { CipherkeepError, InvalidArgumentError } from '../../engine/errors.ts';
import { parseErrorBody, retryable, toTargetError, type Failure } from './failures.ts';
import { signRequest, type Presign, type PresignRequest, type S3Credentials, type SignedRequest } from './signing.ts';
import { elements, escapeXml, text } from './xml.ts';

export interface RetryOptions {
  /** Tries per request, the first included; default 4. */
  attempts?: number;
  /** First backoff; doubles each time, with full jitter; default 200 ms. */
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export interface S3ClientOptions {
  /** Required with `credentials`; with `presign` only used in messages. */
  bucket?: string;
  region?: string;
  /** e.g. http://127.0.0.1:8080; path-style addressing when set. */
  endpoint?: string;
  credentials?: S3Credentials;
  /** Signs each request elsewhere (the app's server); the page then never holds credentials. */
  presign?: Presign;
  retry?: RetryOptions;
  /** Per attempt; default 120 s. */
  requestTimeoutMs?: number;
  /** The signing clock (tests inject a skewed one). */
  clock?: () => Date;
  fetch?: typeof fetch;
}

export interface ObjectInfo {
  key: string;
  size: number;
  mtimeMs: number;
  etag: string;
}

export interface PartResult {
  partNumber: number;
  etag: string;
}

interface Call extends PresignRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'DELETE';
  key: string;
  body?: Uint8Array;
  /** Sent but not signed (Range). */
  unsigned?: Record<string, string>;
  /** Safe to send twice. */
  idempotent: boolean;
  /** Statuses that are answers, not failures (e.g. 404 for HEAD). */
  accept?: number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class S3Client {
  readonly label: string;
  readonly #o: S3ClientOptions;
  readonly #cache = new Map<string, ArrayBuffer>();

  constructor(options: S3ClientOptions) {
    if (!options.credentials === !options.presign) throw new InvalidArgumentError('S3Client: give exactly one of credentials or presign');
    if (options.credentials && !options.bucket) throw new InvalidArgumentError('S3Client: bucket is required');
    if (options.credentials && (!options.credentials.accessKeyId || !options.credentials.secretAccessKey)) {
      throw new InvalidArgumentError('S3Client: credentials need accessKeyId and secretAccessKey');
    }
    this.#o = options;
    this.label = options.bucket ? `s3://${options.bucket}` : 's3 (presigned)';
  }

  #sign(call: Call): Promise<SignedRequest> {
    const request = { query: call.query, headers: call.headers };
    if (this.#o.presign) return this.#o.presign(call.method, call.key, request);
    return signRequest(
      { bucket: this.#o.bucket!, region: this.#o.region, endpoint: this.#o.endpoint }, this.#o.credentials!, call.method, call.key, request,
      { now: this.#now(), cache: this.#cache },
    );
  }

  #now = () => this.#o.clock?.() ?? new Date();

  /**
   * One request, retried while it is idempotent and the failure transient;
   * `read` consumes the accepted response inside the attempt, so a body cut
   * off mid-transfer is retried too.
   */
  async #request<T>(what: string, call: Call, read: (res: Response) => Promise<T>): Promise<T> {
    const attempts = Math.max(1, this.#o.retry?.attempts ?? 4);
    const base = this.#o.retry?.baseDelayMs ?? 200;
    const cap = this.#o.retry?.maxDelayMs ?? 5000;
    let failure: Failure = {};
    let tries = 0;
    while (tries < attempts) {
      if (tries > 0) await sleep(Math.random() * Math.min(cap, base * 2 ** (tries - 1)));
      tries++;
      const r = await this.#attempt(call, read);
      if (!('failure' in r)) return r.value;
      failure = r.failure;
      if (!call.idempotent || !retryable(failure)) break;
    }
    throw toTargetError(what, failure, tries);
  }

  async #attempt<T>(call: Call, read: (res: Response) => Promise<T>): Promise<{ value: T } | { failure: Failure }> {
    let res: Response;
    try {
      const signed = await this.#sign(call);
      res = await (this.#o.fetch ?? fetch)(signed.url, {
        method: call.method, headers: { ...signed.headers, ...call.unsigned }, body: call.body as Uint8Array<ArrayBuffer> | undefined,
        signal: AbortSignal.timeout(this.#o.requestTimeoutMs ?? 120_000),
      });
    } catch (cause) {
      // A presigner's refusal (the app's server said no: a typed error, e.g. TARGET_DENIED) is not transient.
      if (cause instanceof CipherkeepError) throw cause;
      return { failure: { cause } };
    }
    if (res.ok || call.accept?.includes(res.status)) {
      try {
        return { value: await read(res) };
      } catch (cause) {
        if (cause instanceof S3AnswerError) return { failure: cause.failure };
        return { failure: { cause } };
      }
    }
    const body = call.method === 'HEAD' ? '' : await res.text().catch(() => '');
    const date = Date.parse(res.headers.get('date') ?? '');
    return { failure: { status: res.status, ...parseErrorBody(body), skewMs: Number.isNaN(date) ? undefined : this.#now().getTime() - date } };
  }

  #what(op: string, key: string): string {
    return `${this.label}${key ? `/${key}` : ''}: ${op}`;
  }

  /** null when there is no such object (or, as S3's HEAD cannot say which, no such bucket). */
  headObject(key: string): Promise<ObjectInfo | null> {
    return this.#request(this.#what('HEAD', key), { method: 'HEAD', key, idempotent: true, accept: [404] }, async (res) =>
      res.status === 404 ? null : infoFromHeaders(key, res.headers));
  }

  /**
   * Throws TargetNotFoundError when the bucket is missing, TargetDeniedError when access is refused.
   * Lists under `prefix`: a presigner signs listings of its own prefix only.
   */
  async headBucket(prefix = ''): Promise<void> {
    await this.#request(this.#what('HEAD bucket', ''), { method: 'GET', key: '', query: { 'list-type': '2', 'max-keys': '1', prefix }, idempotent: true }, async (res) => {
      await res.arrayBuffer();
    });
  }

  /** The whole object, or `length` bytes at `offset` (fewer at the end; none past it). */
  getObject(key: string, range?: { offset: number; length: number }): Promise<Uint8Array> {
    if (range && range.length <= 0) return Promise.resolve(new Uint8Array(0));
    const unsigned = range ? { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : undefined;
    return this.#request(this.#what('GET', key), { method: 'GET', key, unsigned, idempotent: true, accept: range ? [416] : [] }, async (res) => {
      if (res.status === 416) {
        await res.arrayBuffer();
        return new Uint8Array(0);
      }
      const bytes = new Uint8Array(await res.arrayBuffer());
      const expected = Number(res.headers.get('content-length') ?? bytes.length);
      if (bytes.length !== expected) throw new Error(`short body: ${bytes.length} of ${expected} bytes`);
      // A store that ignores Range sends it all.
      return range && res.status === 200 ? bytes.slice(range.offset, range.offset + range.length) : bytes;
    });
  }

  /** One PUT with Content-MD5 (the store rejects a body that arrives different); returns the ETag. */
  putObject(key: string, body: Uint8Array, contentMd5: string): Promise<string> {
    return this.#request(this.#what('PUT', key), { method: 'PUT', key, body, headers: { 'content-md5': contentMd5 }, idempotent: true }, async (res) => {
      await res.arrayBuffer();
      return res.headers.get('etag') ?? '';
    });
  }

  /** S3 answers 204 whether or not the object existed. */
  async deleteObject(key: string): Promise<void> {
    await this.#request(this.#what('DELETE', key), { method: 'DELETE', key, idempotent: true }, (res) => res.arrayBuffer());
  }

  /** Every object whose key starts with `prefix`, following ListObjectsV2's pages. */
  async listObjects(prefix: string, pageSize = 1000): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { 'list-type': '2', prefix, 'max-keys': String(pageSize) };
      if (token) query['continuation-token'] = token;
      const xml = await this.#request(this.#what(`LIST ${prefix}*`, ''), { method: 'GET', key: '', query, idempotent: true }, (res) => res.text());
      for (const c of elements(xml, 'Contents')) {
        out.push({
          key: text(c, 'Key') ?? '', size: Number(text(c, 'Size') ?? 0),
          mtimeMs: Date.parse(text(c, 'LastModified') ?? '') || 0, etag: text(c, 'ETag') ?? '',
        });
      }
      token = text(xml, 'IsTruncated') === 'true' ? text(xml, 'NextContinuationToken') : undefined;
    } while (token);
    return out;
  }

  /** Not retried: a second POST would start a second upload. */
  createMultipartUpload(key: string): Promise<string> {
    return this.#request(this.#what('create multipart upload', key), { method: 'POST', key, query: { uploads: '' }, idempotent: false }, async (res) => {
      const id = text(await res.text(), 'UploadId');
      if (!id) throw new S3AnswerError({ status: res.status, s3Code: 'NoUploadId' });
      return id;
    });
  }

  uploadPart(key: string, uploadId: string, partNumber: number, body: Uint8Array, contentMd5: string): Promise<string> {
    const call: Call = { method: 'PUT', key, body, query: { partNumber: String(partNumber), uploadId }, headers: { 'content-md5': contentMd5 }, idempotent: true };
    return this.#request(this.#what(`PUT part ${partNumber}`, key), call, async (res) => {
      await res.arrayBuffer();
      return res.headers.get('etag') ?? '';
    });
  }

  /**
   * Makes the object appear, whole. Retried: a retry that finds the upload
   * gone (an earlier attempt completed it, but its answer was lost) is
   * settled by the caller checking the object's ETag. The store may answer
   * 200 and still fail (an <Error> body): that counts as a failure.
   */
  completeMultipartUpload(key: string, uploadId: string, parts: PartResult[]): Promise<string> {
    const body = new TextEncoder().encode(`<CompleteMultipartUpload>${parts
      .map((p) => `<Part><PartNumber>${p.partNumber}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`).join('')}</CompleteMultipartUpload>`);
    const call: Call = { method: 'POST', key, body, query: { uploadId }, idempotent: true };
    return this.#request(this.#what('complete multipart upload', key), call, async (res) => {
      const xml = await res.text();
      if (elements(xml, 'Error').length) throw new S3AnswerError({ status: 500, ...parseErrorBody(xml) });
      return text(xml, 'ETag') ?? '';
    });
  }

  async abortMultipartUpload(key: string, uploadId: string): Promise<void> {
    await this.#request(this.#what('abort multipart upload', key), { method: 'DELETE', key, query: { uploadId }, idempotent: true, accept: [404] }, (res) => res.arrayBuffer());
  }

  /** The parts an open upload holds, in part order (for resuming it). */
  async listParts(key: string, uploadId: string): Promise<{ partNumber: number; etag: string; size: number }[]> {
    const out: { partNumber: number; etag: string; size: number }[] = [];
    let marker: string | undefined;
    do {
      const query: Record<string, string> = { uploadId, ...(marker ? { 'part-number-marker': marker } : {}) };
      const xml = await this.#request(this.#what('LIST parts', key), { method: 'GET', key, query, idempotent: true }, (res) => res.text());
      for (const p of elements(xml, 'Part')) {
        out.push({ partNumber: Number(text(p, 'PartNumber')), etag: text(p, 'ETag') ?? '', size: Number(text(p, 'Size')) });
      }
      marker = text(xml, 'IsTruncated') === 'true' ? text(xml, 'NextPartNumberMarker') : undefined;
    } while (marker);
    return out;
  }

  /** Uploads begun and neither completed nor aborted, under `prefix`. */
  async listMultipartUploads(prefix: string): Promise<{ key: string; uploadId: string; initiatedMs: number }[]> {
    const xml = await this.#request(this.#what(`LIST uploads ${prefix}*`, ''), { method: 'GET', key: '', query: { uploads: '', prefix }, idempotent: true }, (res) => res.text());
    return elements(xml, 'Upload').map((u) => ({
      key: text(u, 'Key') ?? '', uploadId: text(u, 'UploadId') ?? '', initiatedMs: Date.parse(text(u, 'Initiated') ?? '') || 0,
    }));
  }
}

/** A 2xx response whose content says it failed (S3 does this for CompleteMultipartUpload). */
class S3AnswerError extends Error {
  constructor(readonly failure: Failure) {
    super(failure.s3Code ?? 'bad answer');
  }
}

function infoFromHeaders(key: string, h: Headers): ObjectInfo {
  return { key, size: Number(h.get('content-length') ?? 0), mtimeMs: Date.parse(h.get('last-modified') ?? '') || 0, etag: h.get('etag') ?? '' };
}
