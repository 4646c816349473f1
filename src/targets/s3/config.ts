/**
 * Settings from the places people keep them: `s3://bucket/prefix` URLs and
 * the AWS environment variables. Pure functions over plain values, so they
 * run anywhere (the caller passes `process.env` or `Deno.env.toObject()`).
 */
import { InvalidArgumentError } from '../../engine/errors.ts';
import type { S3Credentials } from './signing.ts';

export interface S3Url {
  bucket: string;
  /** '' or ending in '/'. */
  prefix: string;
}

/** `s3://bucket` or `s3://bucket/some/prefix` (a trailing slash is implied). */
export function parseS3Url(url: string): S3Url {
  const m = /^s3:\/\/([^/?#]+)(?:\/([^?#]*))?$/.exec(url);
  if (!m) throw new InvalidArgumentError(`not an s3://bucket/prefix URL: "${url}"`);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9.\-_]{1,254}$/i.test(bucket)) throw new InvalidArgumentError(`not a valid bucket name: "${bucket}"`);
  const path = (m[2] ?? '').replace(/\/+$/, '');
  if (path.split('/').some((s) => s === '.' || s === '..') || /\/\//.test(path)) throw new InvalidArgumentError(`not a valid prefix: "${path}"`);
  return { bucket, prefix: path ? `${path}/` : '' };
}

export const isS3Url = (s: string) => s.startsWith('s3://');

export interface S3EnvOptions {
  region: string;
  endpoint?: string;
  credentials?: S3Credentials;
}

/**
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION
 * (or AWS_DEFAULT_REGION; default us-east-1), AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL (path-style addressing then). Credentials are left out
 * when neither key is set; one without the other is an error (naming the
 * variable, never its value).
 */
export function s3OptionsFromEnv(env: Record<string, string | undefined>): S3EnvOptions {
  const get = (name: string) => (env[name] ?? '').trim() || undefined;
  const out: S3EnvOptions = { region: get('AWS_REGION') ?? get('AWS_DEFAULT_REGION') ?? 'us-east-1' };
  const endpoint = get('AWS_ENDPOINT_URL_S3') ?? get('AWS_ENDPOINT_URL');
  if (endpoint) {
    let url: URL;
    try {
      url = new URL(endpoint);
    } catch {
      throw new InvalidArgumentError('AWS_ENDPOINT_URL is not a URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('AWS_ENDPOINT_URL must be http(s)');
    if (url.username || url.password || url.search) throw new InvalidArgumentError('AWS_ENDPOINT_URL must not carry credentials or a query');
    out.endpoint = `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
  }
  const id = get('AWS_ACCESS_KEY_ID');
  const secret = get('AWS_SECRET_ACCESS_KEY');
  if (id && !secret) throw new InvalidArgumentError('AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not');
  if (secret && !id) throw new InvalidArgumentError('AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not');
  if (id && secret) {
    out.credentials = { accessKeyId: id, secretAccessKey: secret };
    const token = get('AWS_SESSION_TOKEN');
    if (token) out.credentials.sessionToken = token;
  }
  return out;
}
