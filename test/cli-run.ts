/** Runs the real `cipherkeep` binary as a subprocess, under the runtime running the suite (Node or Deno). */
import path from 'node:path';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

const BIN = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '../bin/cipherkeep.mjs');
export const RUNTIME = 'Deno' in globalThis ? [process.execPath, 'run', '-A', BIN] : [process.execPath, BIN];

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed unless `keepStdinOpen`. */
  input?: string;
  /** Leave stdin open after `input`, as a pipe whose writer lingers. */
  keepStdinOpen?: boolean;
  cwd?: string;
}

/** Starts the CLI; `done` resolves when it exits. */
export function startCli(args: string[], options: CliOptions = {}): { child: ChildProcessWithoutNullStreams; done: Promise<Run> } {
  const env: Record<string, string | undefined> = { ...process.env, ...options.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const child = spawn(RUNTIME[0]!, [...RUNTIME.slice(1), ...args], { env: env as NodeJS.ProcessEnv, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.write(options.input ?? '');
  if (!options.keepStdinOpen) child.stdin.end();
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr })));
  return { child, done };
}

export function cli(args: string[], options: CliOptions = {}): Promise<Run> {
  return startCli(args, options).done;
}

/** The one JSON object a `--json` run printed. */
export function json(r: Run): Record<string, any> {
  const lines = r.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one JSON line on stdout, got ${lines.length}: ${r.stdout}`);
  return JSON.parse(lines[0]!);
}
