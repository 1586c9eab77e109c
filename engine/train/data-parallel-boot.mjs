// Entry of a data-parallel worker thread (see ./data-parallel.ts). A worker thread inherits neither
// tsx's loader from `bin/normlab.js` nor vitest's, and Node 20 applies `--import` hooks only after
// it has resolved the worker's own entry; so this plain-JS entry registers tsx, then loads the
// TypeScript worker.
import { register } from 'tsx/esm/api';

register();
await import('./data-parallel-worker.ts');
