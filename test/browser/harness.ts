/** Puts the page API on window for Playwright tests to drive with page.evaluate(). */
import * as cipherkeep from '../../src/browser.ts';

declare global {
  interface Window {
    cipherkeep: typeof cipherkeep;
  }
}
window.cipherkeep = cipherkeep;
document.getElementById('status')!.textContent = 'ready';
