/**
 * node:test's `describe` and `it`, with a timeout on every test: the suites
 * can fail but never hang. (Deno honours only a test's own `timeout` — not
 * `--test-timeout`, nor a suite's — so each test carries one.) A test that
 * sets its own keeps it.
 */
import { describe, it as nodeIt, type TestContext, type TestOptions } from 'node:test';

export const TEST_TIMEOUT_MS = 10 * 60_000;

type TestFn = (t: TestContext) => void | Promise<void>;

export function it(name: string, fn: TestFn): Promise<void>;
export function it(name: string, options: TestOptions, fn: TestFn): Promise<void>;
export function it(name: string, a: TestOptions | TestFn, b?: TestFn): Promise<void> {
  const [options, fn] = typeof a === 'function' ? [{}, a] : [a, b!];
  return nodeIt(name, { timeout: TEST_TIMEOUT_MS, ...options }, fn);
}

export { describe };
