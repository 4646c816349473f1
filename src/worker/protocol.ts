/**
 * What crosses the worker boundary besides Comlink's own messages: errors
 * keep their class, code and SQLite code (Comlink alone turns them into plain
 * Errors), with the HTTP status of a target's failure, and nothing else is added to the wire. The class is found from the
 * stable `code`, never from a class or function name: a minifier renames
 * classes differently in the page's bundle and the worker's.
 *
 * Off-site targets in `open()`'s options may carry a `presign` callback
 * (S3 through the app's server): it stays where it was given (the page) and
 * the worker gets a Comlink proxy of it, called once per S3 request.
 */
import * as Comlink from 'comlink';
import { errorClassForCode } from '../engine/errors.ts';

export interface WireError {
  name: string;
  message: string;
  code?: string;
  sqliteCode?: number;
  /** TargetUnreachableError's last HTTP status. */
  status?: number;
}

/** An error as plain data (for any channel that clones: Comlink here, Playwright in the browser tests). */
export function toWire(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  const { code, sqliteCode, status } = err as { code?: string; sqliteCode?: number; status?: unknown };
  return { name: err.name, message: err.message, code, sqliteCode, ...(typeof status === 'number' ? { status } : {}) };
}

/** The error again, with its class when it is one of ours. */
export function fromWire(w: WireError): Error {
  const Class = errorClassForCode(w.code);
  if (Class) {
    return new Class(w.message, {
      ...(w.sqliteCode === undefined ? {} : { sqliteCode: w.sqliteCode }),
      ...(w.status === undefined ? {} : { status: w.status }),
    });
  }
  return Object.assign(new Error(w.message), { name: w.name, code: w.code });
}

/** Options whose `targets` may hold presign callbacks (Comlink proxies only top-level arguments itself). */
type WithTargets = { targets: Array<{ s3?: { presign?: unknown } } | undefined> };

/** Each target's presign callback crosses as a MessagePort that the other side wraps back into a function. */
function presignHandler(): Comlink.TransferHandler<WithTargets, WithTargets> {
  const proxy = Comlink.transferHandlers.get('proxy')!;
  const each = (v: WithTargets, fn: (presign: unknown) => unknown): WithTargets => ({
    ...v, targets: v.targets.map((t) => (t?.s3?.presign ? { ...t, s3: { ...t.s3, presign: fn(t.s3.presign) } } : t)),
  });
  return {
    canHandle: (v): v is WithTargets => Array.isArray((v as WithTargets | null)?.targets) && (v as WithTargets).targets.some((t) => typeof t?.s3?.presign == 'function'),
    serialize(v) {
      const ports: Transferable[] = [];
      return [each(v, (f) => {
        const [port, transfer] = proxy.serialize(f);
        ports.push(...transfer);
        return port;
      }), ports];
    },
    deserialize: (wire) => each(wire, (port) => proxy.deserialize(port)),
  };
}

let installed = false;

/** Installs the error transfer handler; both sides call it before talking. */
export function installTransferHandlers(): void {
  if (installed) return;
  installed = true;
  const original = Comlink.transferHandlers.get('throw')!;
  Comlink.transferHandlers.set('throw', {
    canHandle: original.canHandle,
    serialize: ({ value }: { value: unknown }) => [{ wire: toWire(value) }, []],
    deserialize: (serialized: { wire: WireError }) => {
      throw fromWire(serialized.wire);
    },
  } as Comlink.TransferHandler<unknown, unknown>);
  Comlink.transferHandlers.set('cipherkeep-presign', presignHandler() as Comlink.TransferHandler<unknown, unknown>);
}
