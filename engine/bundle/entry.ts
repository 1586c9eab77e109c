/** The portable bundle's entry (engine/bundle/build.ts): the `normlab` command, without tsx. */
import { main } from '../cli/main.js';

await main(process.argv);
