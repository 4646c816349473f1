/**
 * Turns what an S3-compatible store answered into cipherkeep's typed errors.
 * Messages name the bucket, key, operation, status and S3 error code — never
 * a URL (presigned ones carry credentials), a header or a key.
 */
import {
  TargetDeniedError, TargetNotFoundError, TargetRejectedError, TargetUnreachableError, type CipherkeepError,
} from '../../engine/errors.ts';
import { text } from './xml.ts';

/** What one failed attempt left us with. */
export interface Failure {
  status?: number;
  s3Code?: string;
  s3Message?: string;
  /** The network error, timeout or parse error, when there was no answer. */
  cause?: unknown;
  /** Our signing clock minus the store's `Date`, when both were known. */
  skewMs?: number;
}

export function parseErrorBody(body: string): { s3Code?: string; s3Message?: string } {
  return { s3Code: text(body, 'Code'), s3Message: text(body, 'Message') };
}

/** Worth another attempt (for an idempotent request): no answer, a server error, throttling. (Not BadDigest: a body that keeps arriving different is a broken proxy, not bad luck.) */
export function retryable(f: Failure): boolean {
  if (f.status === undefined) return true;
  if (f.status >= 500 || f.status === 429) return true;
  return f.s3Code === 'RequestTimeout' || f.s3Code === 'SlowDown';
}

const DENIED_HINTS: Record<string, string> = {
  SignatureDoesNotMatch: 'the secret access key is wrong, or the request was changed on the way',
  InvalidAccessKeyId: 'no such access key at this store',
  ExpiredToken: 'the session token has expired',
  InvalidToken: 'the session token is not valid',
  AccessDenied: 'these credentials may not do this',
};

const SKEW_LIMIT_MS = 5 * 60_000;

function skewText(skewMs: number): string {
  const s = Math.round(skewMs / 1000);
  return `the signing clock is ${Math.abs(s)} s ${s > 0 ? 'ahead of' : 'behind'} the store's; fix the clock (S3 allows 15 minutes)`;
}

export function toTargetError(what: string, f: Failure, attempts: number): CipherkeepError {
  const code = f.s3Code ? ` ${f.s3Code}` : '';
  const after = attempts > 1 ? ` after ${attempts} attempts` : '';
  if (f.status === undefined) {
    const reason = f.cause instanceof Error ? (f.cause.name === 'TimeoutError' ? 'timed out' : f.cause.message) : String(f.cause);
    return new TargetUnreachableError(`${what}: no answer from the store${after} (${reason})`, { cause: f.cause });
  }
  if (f.status === 401 || f.status === 403) {
    const skewed = f.s3Code === 'RequestTimeTooSkewed' || (f.skewMs !== undefined && Math.abs(f.skewMs) > SKEW_LIMIT_MS);
    const hint = skewed
      ? f.skewMs !== undefined ? skewText(f.skewMs) : "this machine's clock is too far from the store's; fix the clock (S3 allows 15 minutes)"
      : (f.s3Code && DENIED_HINTS[f.s3Code]) ?? 'access denied (wrong credentials or no permission)';
    return new TargetDeniedError(`${what}: denied, ${f.status}${code}: ${hint}`);
  }
  if (f.s3Code === 'NoSuchBucket') return new TargetNotFoundError(`${what}: the bucket does not exist (404 NoSuchBucket)`);
  if (f.status === 404) return new TargetNotFoundError(`${what}: not found (404${code})`);
  if (retryable(f)) return new TargetUnreachableError(`${what}: the store failed, ${f.status}${code}${after}`, { status: f.status });
  return new TargetRejectedError(`${what}: refused, ${f.status}${code}${f.s3Message ? `: ${f.s3Message}` : ''}`);
}
