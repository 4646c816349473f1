/** s3:// URLs and the AWS environment conventions: pure parsing, no store needed. */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import { S3Target, parseS3Url, s3OptionsFromEnv } from '../src/targets/s3/index.ts';
import { objectUrl } from '../src/targets/s3/signing.ts';

describe('s3:// URLs', () => {
  it('parses a bucket and a prefix that always ends in a slash', () => {
    assert.deepEqual(parseS3Url('s3://backups'), { bucket: 'backups', prefix: '' });
    assert.deepEqual(parseS3Url('s3://backups/'), { bucket: 'backups', prefix: '' });
    assert.deepEqual(parseS3Url('s3://backups/app/daily'), { bucket: 'backups', prefix: 'app/daily/' });
    assert.deepEqual(parseS3Url('s3://backups/app/daily/'), { bucket: 'backups', prefix: 'app/daily/' });
  });

  it('refuses what is not one', () => {
    for (const bad of ['backups', 'http://x/y', 's3://', 's3:///x', 's3://b/../x', 's3://b/a//c', 's3://b/x?versionId=1', 's3://bad bucket/x']) {
      assert.throws(() => parseS3Url(bad), { code: 'INVALID_ARGUMENT' }, bad);
    }
  });
});

describe('AWS environment variables', () => {
  it('reads credentials, session token, region and endpoint', () => {
    assert.deepEqual(s3OptionsFromEnv({
      AWS_ACCESS_KEY_ID: 'AKID', AWS_SECRET_ACCESS_KEY: 'sekrit', AWS_SESSION_TOKEN: 'tok', AWS_REGION: 'eu-west-3', AWS_ENDPOINT_URL: 'http://127.0.0.1:8080/',
    }), { region: 'eu-west-3', endpoint: 'http://127.0.0.1:8080', credentials: { accessKeyId: 'AKID', secretAccessKey: 'sekrit', sessionToken: 'tok' } });
  });

  it('defaults the region, prefers AWS_ENDPOINT_URL_S3, falls back to AWS_DEFAULT_REGION', () => {
    assert.deepEqual(s3OptionsFromEnv({}), { region: 'us-east-1' });
    assert.deepEqual(s3OptionsFromEnv({ AWS_DEFAULT_REGION: 'ap-south-1', AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'https://s3.example:9000' }),
      { region: 'ap-south-1', endpoint: 'https://s3.example:9000' });
  });

  it('a key without its secret (or the reverse) is an error naming the variable, not the value', () => {
    const e1 = (() => { try { s3OptionsFromEnv({ AWS_ACCESS_KEY_ID: 'AKIDVALUE' }); } catch (e) { return e as Error & { code: string }; } })();
    assert.equal(e1?.code, 'INVALID_ARGUMENT');
    assert.match(e1!.message, /AWS_SECRET_ACCESS_KEY is not/);
    assert.ok(!e1!.message.includes('AKIDVALUE'));
    assert.throws(() => s3OptionsFromEnv({ AWS_SECRET_ACCESS_KEY: 'sekrit' }), (e: Error) => /AWS_ACCESS_KEY_ID/.test(e.message) && !e.message.includes('sekrit'));
    assert.throws(() => s3OptionsFromEnv({ AWS_ENDPOINT_URL: 'http://user:sekrit@host' }), (e: Error) => !e.message.includes('sekrit'));
    assert.throws(() => s3OptionsFromEnv({ AWS_ENDPOINT_URL: 'ftp://host' }), { code: 'INVALID_ARGUMENT' });
  });

  it('S3Target.fromUrl combines both, and needs credentials', () => {
    const t = S3Target.fromUrl('s3://bk/app', { AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 'b', AWS_ENDPOINT_URL: 'http://127.0.0.1:9' });
    assert.equal(t.id, 's3://bk/app/');
    assert.equal(t.prefix, 'app/');
    assert.throws(() => S3Target.fromUrl('s3://bk/app', {}), { code: 'INVALID_ARGUMENT' });
  });
});

describe('addressing', () => {
  it('path-style under an endpoint, virtual-hosted on AWS (path-style for dotted buckets); keys encoded once', () => {
    assert.equal(objectUrl({ bucket: 'b', endpoint: 'http://127.0.0.1:8080' }, 'p/a b+c.db'), 'http://127.0.0.1:8080/b/p/a%20b%2Bc.db');
    assert.equal(objectUrl({ bucket: 'b', region: 'eu-west-1' }, 'k', { uploads: '' }), 'https://b.s3.eu-west-1.amazonaws.com/k?uploads=');
    assert.equal(objectUrl({ bucket: 'a.b' }, 'k'), 'https://s3.us-east-1.amazonaws.com/a.b/k');
    assert.equal(objectUrl({ bucket: 'b', endpoint: 'http://h' }, '', { prefix: 'x/y' }), 'http://h/b/?prefix=x%2Fy');
    assert.throws(() => objectUrl({ bucket: 'b' }, 'a/../b'), { code: 'INVALID_ARGUMENT' });
  });
});
