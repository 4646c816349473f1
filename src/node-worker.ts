/**
 * Worker-thread entry for Node and Deno: exposes the cipherkeep API over the
 * filesystem. Started by startKeepWorker() in ./node.ts.
 */
import { parentPort } from 'node:worker_threads';
// Comlink's Node adapter has no exports map entry; this is its ESM file.
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { exposeKeep } from './worker/expose.ts';
import { nodeBackupHost } from './node.ts';

if (!parentPort) throw new Error('node-worker.ts must run in a worker thread');
exposeKeep(nodeEndpoint(parentPort), async () => nodeBackupHost());
