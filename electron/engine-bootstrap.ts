/**
 * Entry of the engine utility process. The engine is TypeScript run through tsx's loader (as the
 * `normlab` CLI does), so the utility process starts here and imports `engine/engine-process.ts`.
 */
import { register } from 'tsx/esm/api';

register();
await import('../engine/engine-process.ts' as string);
