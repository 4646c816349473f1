// The pin lives beside the loader (src/engine/pin.ts) so that it ships in dist/; this keeps old imports working.
export { ENGINE_PIN } from '../src/engine/pin.ts';
