#!/usr/bin/env node
// The `normlab` command: runs the TypeScript engine through tsx's loader (no build step).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../engine/cli/main.ts');
await main(process.argv);
