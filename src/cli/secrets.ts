/**
 * Where the CLI gets passwords: an environment variable, a file descriptor
 * (0 = stdin), or an interactive prompt with echo off. Never argv: anything
 * on the command line shows in `ps`.
 */
import fs from 'node:fs';
import { InvalidArgumentError } from '../engine/errors.ts';
import { fromHex } from '../engine/bytes.ts';

export interface SecretSource {
  env?: string;
  fd?: string;
  /** What to ask on the terminal. */
  prompt: string;
  /** Ask twice on the terminal and require both to match (new passwords). */
  confirm?: boolean;
  /** What to say when there is no source and no terminal to prompt on. */
  missing: string;
}

export async function readSecret(source: SecretSource): Promise<string> {
  if (source.env !== undefined) {
    const value = process.env[source.env];
    if (!value) throw new InvalidArgumentError(`environment variable ${source.env} is empty or not set`);
    return value;
  }
  if (source.fd !== undefined) {
    const fd = Number(source.fd);
    if (!/^\d+$/.test(source.fd) || !Number.isSafeInteger(fd)) throw new InvalidArgumentError(`not a file descriptor: ${source.fd}`);
    const value = readLine(fd);
    if (!value) throw new InvalidArgumentError(`nothing to read as a password on file descriptor ${fd} (its next line is empty)`);
    return value;
  }
  if (!process.stdin.isTTY) throw new InvalidArgumentError(`${source.missing} (stdin is not a terminal to prompt on)`);
  const first = await prompt(source.prompt);
  if (source.confirm && (await prompt('again: ')) !== first) throw new InvalidArgumentError('the two passwords differ');
  if (!first) throw new InvalidArgumentError('empty password');
  return first;
}

/**
 * A raw 32-byte key, as 64 hex digits from an environment variable or the
 * next line of a file descriptor (never an argument). The message never
 * quotes what was read: a near-miss key is still a secret.
 */
export function readRawKey(source: { env?: string; fd?: string; what?: string }): Uint8Array {
  const what = source.what ?? 'key';
  let text: string;
  if (source.env !== undefined) {
    text = process.env[source.env] ?? '';
    if (!text) throw new InvalidArgumentError(`environment variable ${source.env} is empty or not set`);
  } else {
    const fd = Number(source.fd);
    if (!/^\d+$/.test(source.fd ?? '') || !Number.isSafeInteger(fd)) throw new InvalidArgumentError(`not a file descriptor: ${source.fd}`);
    text = readLine(fd);
  }
  const hex = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new InvalidArgumentError(`the ${what} must be 64 hexadecimal digits (a raw 32-byte key); got ${hex.length} characters${/[^0-9a-fA-F]/.test(hex) ? ', not all hexadecimal' : ''}`);
  }
  return fromHex(hex);
}

/**
 * Reads one line from `fd`, a byte at a time so nothing past it is consumed:
 * the next line is there for the next password (rotate-key reads both from
 * one descriptor), and a pipe whose writer stays open does not block us
 * waiting for its end.
 */
function readLine(fd: number): string {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, one, 0, 1, null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // A non-blocking descriptor with nothing yet: wait a little, synchronously, and read again.
      if (code === 'EAGAIN') {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
        continue;
      }
      if (code === 'EBADF') throw new InvalidArgumentError(`file descriptor ${fd} is not open for reading`);
      throw e;
    }
    if (n === 0 || one[0] === 0x0a) break;
    bytes.push(one[0]!);
  }
  if (bytes.at(-1) === 0x0d) bytes.pop();
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** Reads one line from the terminal without echoing it. */
function prompt(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    // Echo goes off before the question appears, so nothing typed at it is shown.
    stdin.setRawMode(true);
    process.stderr.write(question);
    stdin.resume();
    let value = '';
    const done = (result: string | Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done(value);
        if (ch === '\u0003') return done(new InvalidArgumentError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
