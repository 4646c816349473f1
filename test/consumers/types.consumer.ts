/**
 * The package's metadata and types as consumers' tools see them: publint and
 * arethetypeswrong on the packed tarball, and a strict TypeScript consumer
 * (strict, skipLibCheck false, exactOptionalPropertyTypes,
 * noUncheckedIndexedAccess, verbatimModuleSyntax) compiling the README's
 * usage under moduleResolution node16 and bundler, and a browser-only
 * project without Node's types.
 */
import { before } from 'node:test';
import { describe, it } from '../timeouts.ts';
import assert from 'node:assert/strict';
import { bin, consumerProject, fixture, packOnce, run } from './setup.ts';

const strict = {
  strict: true, skipLibCheck: false, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true,
  verbatimModuleSyntax: true, target: 'es2022', noEmit: true,
};
const config = (options: Record<string, unknown>, files: string[]) => `${JSON.stringify({ compilerOptions: { ...strict, ...options }, files }, null, 2)}\n`;
let project: string;

describe('consumers: types and package metadata', { timeout: 600_000 }, () => {
  before(() => {
    project = consumerProject('types', {
      extra: { '@types/node': '^20.19.0' },
      files: {
        'node.ts': fixture('types-node.ts'),
        'browser.ts': fixture('types-browser.ts'),
        'tsconfig.node16.json': config({ module: 'node16', moduleResolution: 'node16', lib: ['es2022', 'dom'], types: ['node'] }, ['node.ts', 'browser.ts']),
        'tsconfig.bundler.json': config({ module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom'], types: ['node'] }, ['node.ts', 'browser.ts']),
        'tsconfig.web.json': config({ module: 'esnext', moduleResolution: 'bundler', lib: ['es2022', 'dom', 'dom.iterable'], types: [] }, ['browser.ts']),
      },
    });
  });

  for (const name of ['node16', 'bundler', 'web']) {
    it(`tsc -p tsconfig.${name}.json: the shipped .d.ts type-check in a strict consumer with zero errors`, { timeout: 120_000 }, () => {
      run('node', [bin('tsc'), '-p', `tsconfig.${name}.json`], { cwd: project, timeout: 110_000 });
    });
  }

  it('publint finds nothing in the tarball', { timeout: 60_000 }, () => {
    const out = run('node', [bin('publint'), 'run', packOnce().tarball, '--level', 'suggestion'], { cwd: project, timeout: 55_000 });
    assert.match(out, /All good!/, out);
  });

  it('arethetypeswrong: every entry resolves to its types under node16 (ESM) and bundler', { timeout: 60_000 }, () => {
    // esm-only: the package is ESM, so node10 and require() from CJS are unsupported by design.
    // engine.wasm is a binary asset for bundlers and hosting, not a module with types.
    const out = run('node', [bin('attw'), packOnce().tarball, '--profile', 'esm-only', '--exclude-entrypoints', './engine.wasm', '--format', 'json'], { cwd: project, timeout: 55_000 });
    const report = JSON.parse(out);
    const unsupported = (p: { kind: string; resolutionKind?: string }) =>
      (p.kind === 'NoResolution' && p.resolutionKind === 'node10') || (p.kind === 'CJSResolvesToESM' && p.resolutionKind === 'node16-cjs');
    assert.deepEqual(report.analysis.problems.filter((p: { kind: string }) => !unsupported(p)), [], out.slice(0, 2000));
    assert.deepEqual(Object.keys(report.analysis.entrypoints).sort(), ['.', './browser', './node', './package.json', './worker.js']);
  });
});
