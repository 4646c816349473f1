/**
 * Errors cross worker boundaries by their stable `code`: a minifier renames
 * classes (a wrong password once arrived in the page as a plain Error named
 * "y"), so neither `name` nor the match may come from `constructor.name`.
 */
import { describe, it } from './timeouts.ts';
import assert from 'node:assert/strict';
import * as api from '../src/index.ts';
import { WorkerFailedError } from '../src/browser.ts';
import { fromWire, toWire } from '../src/worker/protocol.ts';

const classes = Object.entries({ ...api, WorkerFailedError }).filter(
  (e): e is [string, typeof api.CipherkeepError] => typeof e[1] === 'function' && (e[1] === api.CipherkeepError || e[1].prototype instanceof api.CipherkeepError),
);

describe('typed errors across the wire', () => {
  it('every error class spells out its name and has a code of its own', () => {
    assert.ok(classes.length >= 14, `${classes.length} classes`);
    const codes = new Set<string>();
    for (const [exported, Class] of classes) {
      const e = new Class('m');
      assert.equal(e.name, exported);
      assert.match(e.code, /^[A-Z_]+$/);
      assert.ok(!codes.has(e.code), `${e.code} is unique`);
      codes.add(e.code);
      assert.equal(api.errorClassForCode(e.code), Class, `${e.code} rebuilds as ${exported}`);
    }
  });

  it('rebuilds the class from the code whatever name arrives (as from minified code), keeping sqliteCode', () => {
    for (const [exported, Class] of classes) {
      const wire = { ...toWire(new Class('boom', { sqliteCode: 26 })), name: 'y' };
      const back = fromWire(wire);
      assert.ok(back instanceof Class, exported);
      assert.equal(back.name, exported);
      assert.equal(back.message, 'boom');
      assert.equal((back as api.CipherkeepError).sqliteCode, 26);
    }
  });

  it('a target failure keeps its HTTP status', () => {
    const back = fromWire({ ...toWire(new api.TargetUnreachableError('503 after retries', { status: 503 })), name: 'q' });
    assert.ok(back instanceof api.TargetUnreachableError);
    assert.equal(back.status, 503);
    assert.equal((fromWire(toWire(new api.TargetUnreachableError('offline'))) as api.TargetUnreachableError).status, undefined);
  });

  it('an error that is not ours stays a plain Error with its name and code', () => {
    const back = fromWire(toWire(Object.assign(new Error('gone'), { code: 'ENOENT' })));
    assert.ok(!(back instanceof api.CipherkeepError));
    assert.deepEqual([back.name, back.message, (back as { code?: string }).code], ['Error', 'gone', 'ENOENT']);
  });
});
