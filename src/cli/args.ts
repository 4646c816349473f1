/**
 * Command-line arguments: node:util's parseArgs splits them (its tokens),
 * and every mistake gets a message of ours — parseArgs' own ("argument is
 * ambiguous…", unbalanced quotes) explain its rules, not the user's error.
 * An option's value is the next argument even when it starts with a dash
 * (`--max-backups -1` is a bad number, not a missing value), unless that
 * argument is one of our options.
 */
import { parseArgs } from 'node:util';
import { InvalidArgumentError } from '../engine/errors.ts';

export const OPTIONS = {
  db: { type: 'string' },
  'backup-dir': { type: 'string' },
  prefix: { type: 'string' },
  'max-backups': { type: 'string' },
  'max-age-days': { type: 'string' },
  force: { type: 'boolean' },
  incremental: { type: 'boolean' },
  generation: { type: 'string' },
  'keep-generations': { type: 'string' },
  profile: { type: 'string' },
  'kdf-iter': { type: 'string' },
  'allow-weak-kdf': { type: 'boolean' },
  'page-size': { type: 'string' },
  hmac: { type: 'string' },
  'kdf-algorithm': { type: 'string' },
  'journal-mode': { type: 'string' },
  'password-env': { type: 'string' },
  'password-fd': { type: 'string' },
  'new-password-env': { type: 'string' },
  'new-password-fd': { type: 'string' },
  'key-env': { type: 'string' },
  'key-fd': { type: 'string' },
  'new-key-env': { type: 'string' },
  'new-key-fd': { type: 'string' },
  compat: { type: 'string' },
  'plaintext-header': { type: 'string' },
  salt: { type: 'string' },
  'lock-timeout-ms': { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Options = typeof OPTIONS;
export type Flags = {
  -readonly [K in keyof Options]?: Options[K]['type'] extends 'string' ? string : boolean;
};

/** Bad usage: exit code 2, and the message ends by pointing at --help. */
export class UsageError extends InvalidArgumentError {}

export function usage(message: string): never {
  throw new UsageError(message);
}

export function parseCommandLine(argv: string[]): { flags: Flags; positionals: string[] } {
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: false, tokens: true });
  const flags: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') positionals.push(token.value);
    if (token.kind !== 'option') continue;
    const spec = (OPTIONS as Record<string, { type: string }>)[token.name];
    if (!spec) usage(`unknown option: ${token.rawName}`);
    if (token.name in flags) usage(`${token.rawName} is given more than once`);
    if (spec.type === 'boolean') {
      if (token.inlineValue) usage(`${token.rawName} takes no value`);
      flags[token.name] = true;
    } else {
      const value = token.value;
      if (value === undefined || value === '') usage(`${token.rawName} needs a value`);
      if (!token.inlineValue && isOurOption(value)) usage(`${token.rawName} needs a value (got the option ${value})`);
      flags[token.name] = value;
    }
  }
  return { flags: flags as Flags, positionals };
}

function isOurOption(arg: string): boolean {
  if (arg === '-h') return true;
  const name = /^--([^=]+)/.exec(arg)?.[1];
  return name !== undefined && name in OPTIONS;
}

/** A whole number of at least `min`, or undefined when the option is absent. */
export function wholeNumber(value: string | undefined, name: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
    usage(`--${name} must be a whole number${min > 0 ? ` of at least ${min}` : ' (0 or more)'}, not ${JSON.stringify(value)}`);
  }
  return Number(value);
}
