// The Node worker thread's first module. cipherkeep runs from its TypeScript
// sources; Node 20 does not pass `--import tsx` on to worker threads, so the
// thread registers tsx itself before loading the real entry. (Node queues
// messages until the entry listens; Deno does not, and loads the entry directly.)
const { register } = await import('tsx/esm/api');
register();
await import('./node-worker.ts');
