/**
 * The preload: the smallest API the VS Code pattern needs. Main sends the engine's MessagePort
 * over IPC (`normlab:engine-port`); this script forwards it to the page with `window.postMessage`
 * (a MessagePort cannot cross the context bridge). Nothing else is exposed: no `ipcRenderer`, no
 * Node, no file system. The data in the message says whether the engine was just restarted after
 * a crash and which project it serves.
 *
 * Sandboxed preloads run as plain scripts with a small `require` (electron only), so this file
 * has no import/export statements.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a sandboxed preload has no ESM imports
const { ipcRenderer } = require('electron') as typeof import('electron');

ipcRenderer.on('normlab:engine-port', (event, info: unknown) => {
  // Only this window receives it: targetOrigin is our own origin, the port goes along as a transfer.
  const origin = window.location.origin;
  window.postMessage({ type: 'normlab:engine-port', info }, origin && origin !== 'null' ? origin : '*', event.ports);
});
