/**
 * Manifest crypto: keys derived with HKDF-SHA-256 from the database's raw
 * key, manifests sealed with AES-256-GCM (encryption and MAC in one; the
 * plaintext header is its additional data, so a changed sequence number, key
 * id or pack list fails like a changed body), and generation digests.
 * WebCrypto only: the same in Node, Deno and browsers.
 */
import { InvalidArgumentError } from '../../engine/errors.ts';
import {
  decodeBody, decodeHeader, encodeBody, encodeHeader, encodeLogical, FormatError, KEY_ID_BYTES, NONCE_BYTES, type ManifestBody, type ManifestHeader,
} from './format.ts';
import { bytesEqual } from '../../engine/bytes.ts';

const HKDF_SALT = new TextEncoder().encode('cipherkeep page store v1');
/** WebCrypto's types want ArrayBuffer-backed views; ours are (nothing here is shared memory). */
const own = (b: Uint8Array) => b as Uint8Array<ArrayBuffer>;
const DIGEST_DOMAIN = new TextEncoder().encode('cipherkeep page store v1 generation\0');

export interface StoreKeys {
  /** Public: tells manifests of this key from others without decrypting them. */
  keyId: Uint8Array;
  aead: CryptoKey;
}

/** One generation, authenticated and decoded. */
export interface OpenedManifest {
  header: ManifestHeader;
  body: ManifestBody;
  /** SHA-256 over the logical section: the generation's identity, kept across repacks. */
  digest: Uint8Array;
}

export async function deriveStoreKeys(rawKey: Uint8Array): Promise<StoreKeys> {
  if (!(rawKey instanceof Uint8Array) || rawKey.length !== 32) {
    throw new InvalidArgumentError('the page store needs the 32-byte raw SQLCipher key');
  }
  const base = await crypto.subtle.importKey('raw', rawKey.slice(), 'HKDF', false, ['deriveBits', 'deriveKey']);
  const info = (s: string) => new TextEncoder().encode(s);
  const keyId = new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: HKDF_SALT, info: info('key id') }, base, KEY_ID_BYTES * 8));
  const aead = await crypto.subtle.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: HKDF_SALT, info: info('manifest aead') }, base,
    { name: 'AES-GCM', length: 256 }, false, ['encrypt', 'decrypt'],
  );
  return { keyId, aead };
}

/**
 * SHA-256(domain ‖ SHA-256(logical section)): the inner hash takes the
 * megabytes as they are, so nothing is copied to prefix the domain.
 */
export async function generationDigest(logicalBytes: Uint8Array): Promise<Uint8Array> {
  const inner = new Uint8Array(await crypto.subtle.digest('SHA-256', own(logicalBytes)));
  const outer = new Uint8Array(DIGEST_DOMAIN.length + inner.length);
  outer.set(DIGEST_DOMAIN);
  outer.set(inner, DIGEST_DOMAIN.length);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', outer));
}


/** A manifest file for `body` (whose pages live in `packs`), as its header and its sealed body: written one after the other. */
export async function sealManifest(keys: StoreKeys, packs: string[], body: ManifestBody, logical = encodeLogical(body.logical)): Promise<{ header: Uint8Array; sealed: Uint8Array }> {
  const plain = encodeBody(body, logical);
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const header = encodeHeader({ seq: body.logical.seq, keyId: keys.keyId, packs, nonce, cipherLength: plain.length + 16 });
  const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv: nonce, additionalData: own(header), tagLength: 128 }, keys.aead, own(plain)));
  return { header, sealed };
}

export type OpenFailure = { reason: 'foreign-key' | 'damaged'; detail: string };

/**
 * Authenticates and decodes a whole manifest file. `seq` is the sequence
 * number its name carries: a manifest under another generation's name is
 * damaged (swapped), as is one that fails authentication or is truncated.
 */
export async function openManifest(keys: StoreKeys, bytes: Uint8Array, seq: number): Promise<OpenedManifest | OpenFailure> {
  let header: ManifestHeader | null;
  try {
    header = decodeHeader(bytes);
  } catch (e) {
    return { reason: 'damaged', detail: (e as Error).message };
  }
  if (!header) return { reason: 'damaged', detail: 'truncated manifest header' };
  if (!bytesEqual(header.keyId, keys.keyId)) return { reason: 'foreign-key', detail: 'sealed under another key (an earlier or later password)' };
  if (bytes.length !== header.headerLength + header.cipherLength) {
    return { reason: 'damaged', detail: `manifest is ${bytes.length} bytes, its header says ${header.headerLength + header.cipherLength} (truncated or appended to)` };
  }
  let plain: Uint8Array;
  try {
    plain = new Uint8Array(await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: own(header.nonce), additionalData: own(bytes.subarray(0, header.headerLength)), tagLength: 128 },
      keys.aead, own(bytes.subarray(header.headerLength)),
    ));
  } catch {
    return { reason: 'damaged', detail: 'manifest failed authentication (changed since it was written)' };
  }
  try {
    const { body, logicalBytes } = decodeBody(plain, header.packs.length);
    if (body.logical.seq !== header.seq || header.seq !== seq) {
      return { reason: 'damaged', detail: `manifest of generation ${body.logical.seq} stored under the name of generation ${seq} (swapped)` };
    }
    return { header, body, digest: await generationDigest(logicalBytes) };
  } catch (e) {
    if (e instanceof FormatError) return { reason: 'damaged', detail: e.message };
    throw e;
  }
}

export function isOpened(m: OpenedManifest | OpenFailure): m is OpenedManifest {
  return 'body' in m;
}
