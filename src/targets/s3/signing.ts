/**
 * Request signing: SigV4 (aws4fetch's signer, ~3 KB) with credentials, or a
 * caller's `presign` callback so a browser page never holds credentials — the
 * app's server signs each request with `createPresigner`.
 */
import { AwsV4Signer } from 'aws4fetch';
import { InvalidArgumentError } from '../../engine/errors.ts';

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

/** Where requests go: path-style under `endpoint` when given, else AWS's virtual-hosted style. */
export interface S3Location {
  bucket: string;
  region?: string;
  endpoint?: string;
}

export interface PresignRequest {
  /** Query parameters the request needs (uploadId, partNumber, list-type ...). */
  query?: Record<string, string>;
  /** Headers the request will carry and that must be signed (Content-MD5). */
  headers?: Record<string, string>;
}

/** A URL to send the request to, and the headers to send with it. */
export interface SignedRequest {
  url: string;
  headers: Record<string, string>;
}

/** Signs one request for `key` in the bucket ('' for the bucket itself). */
export type Presign = (method: string, key: string, request: PresignRequest) => Promise<SignedRequest>;

/** Percent-encodes like SigV4's canonical URI, keeping '/', so the URL and the signature agree. */
export function encodeKey(key: string): string {
  return key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

function encodeQuery(query: Record<string, string> | undefined): string {
  const pairs = Object.entries(query ?? {}).map(([k, v]) => `${encodeKey(k)}=${encodeKey(v).replace(/\//g, '%2F')}`);
  return pairs.length ? `?${pairs.join('&')}` : '';
}

/** The unsigned URL of `key` (or of the bucket, for ''). */
export function objectUrl(location: S3Location, key: string, query?: Record<string, string>): string {
  if (key.split('/').some((s) => s === '.' || s === '..')) throw new InvalidArgumentError(`object key "${key}" has a "." or ".." segment, which URLs collapse`);
  const region = location.region ?? 'us-east-1';
  let base: string;
  if (location.endpoint) base = `${location.endpoint.replace(/\/+$/, '')}/${encodeKey(location.bucket)}`;
  else if (location.bucket.includes('.')) base = `https://s3.${region}.amazonaws.com/${encodeKey(location.bucket)}`;
  else base = `https://${location.bucket}.s3.${region}.amazonaws.com`;
  return `${base}${key ? `/${encodeKey(key)}` : '/'}${encodeQuery(query)}`;
}

/** SigV4's timestamp format, 20260301T100000Z. */
export const amzDate = (d: Date) => d.toISOString().replace(/[:-]|\.\d{3}/g, '');

export interface SignOptions {
  now: Date;
  /** Sign into the query string (a presigned URL valid for this many seconds) instead of an Authorization header. */
  expiresSeconds?: number;
  /** Derived signing keys, reused per day (holds secrets: keep it private to one client). */
  cache?: Map<string, ArrayBuffer>;
}

export async function signRequest(
  location: S3Location, credentials: S3Credentials, method: string, key: string, request: PresignRequest, options: SignOptions,
): Promise<SignedRequest> {
  const query = { ...request.query };
  if (options.expiresSeconds !== undefined) query['X-Amz-Expires'] = String(options.expiresSeconds);
  const signer = new AwsV4Signer({
    method, url: objectUrl(location, key, query), headers: request.headers ?? {},
    accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey, sessionToken: credentials.sessionToken,
    service: 's3', region: location.region ?? 'us-east-1', datetime: amzDate(options.now),
    signQuery: options.expiresSeconds !== undefined, cache: options.cache,
  });
  const signed = await signer.sign();
  const headers: Record<string, string> = {};
  signed.headers.forEach((v, k) => (headers[k] = v));
  return { url: signed.url.toString(), headers };
}

export interface PresignerOptions extends S3Location {
  credentials: S3Credentials;
  /** The only keys the page may touch: those starting with this (e.g. 'backups/'). */
  prefix: string;
  /** Lifetime of each URL; default 300 s. */
  expiresSeconds?: number;
  clock?: () => Date;
}

const OBJECT_METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'DELETE']);
/** What the S3 client asks for, and nothing else (no ?acl, ?policy, ?versioning ...). */
const OBJECT_QUERY = new Set(['uploads', 'uploadId', 'partNumber', 'part-number-marker']);
const BUCKET_QUERY = new Set(['list-type', 'prefix', 'continuation-token', 'max-keys', 'uploads', 'key-marker', 'upload-id-marker', 'max-uploads']);
const SIGNED_HEADERS = new Set(['content-md5']);

/**
 * For the app's server: a `presign` for one bucket that signs only what the
 * S3 client needs under `prefix` — object reads, writes, multipart uploads
 * and deletes, and listings of the prefix. Expose it to the page behind the
 * app's own authentication: each URL it returns is a credential for a while.
 */
export function createPresigner(options: PresignerOptions): Presign {
  const cache = new Map<string, ArrayBuffer>();
  return async (method, key, request) => {
    const query = request.query ?? {};
    const headers = request.headers ?? {};
    const refuse = (why: string) => new InvalidArgumentError(`refusing to sign ${String(method)} "${String(key)}": ${why}`);
    if (typeof key !== 'string' || typeof method !== 'string') throw refuse('bad request');
    if (key === '') {
      if (method !== 'GET') throw refuse('only listings of the bucket');
      if (!Object.keys(query).every((q) => BUCKET_QUERY.has(q))) throw refuse('query not allowed');
      if (!(query.prefix ?? '').startsWith(options.prefix)) throw refuse('prefix outside the allowed one');
    } else {
      if (!OBJECT_METHODS.has(method)) throw refuse('method not allowed');
      if (!key.startsWith(options.prefix)) throw refuse('key outside the allowed prefix');
      if (!Object.keys(query).every((q) => OBJECT_QUERY.has(q))) throw refuse('query not allowed');
    }
    if (!Object.keys(headers).every((h) => SIGNED_HEADERS.has(h.toLowerCase()))) throw refuse('header not allowed');
    return signRequest(options, options.credentials, method, key, { query, headers }, {
      now: options.clock?.() ?? new Date(), expiresSeconds: options.expiresSeconds ?? 300, cache,
    });
  };
}
