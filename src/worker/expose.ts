/**
 * Worker side: expose the API at once. Anything slow (loading the engine,
 * opening storage) happens lazily inside the first call — a Deno worker that
 * awaited before exposing lost its first message and hung.
 */
import * as Comlink from 'comlink';
import { createKeepApi, type KeepHost, type KeepOptions } from './api.ts';
import { installTransferHandlers } from './protocol.ts';

export function exposeKeep(endpoint: Comlink.Endpoint, hostFor: (options: KeepOptions) => Promise<KeepHost>): void {
  installTransferHandlers();
  Comlink.expose(createKeepApi(hostFor), endpoint);
}
