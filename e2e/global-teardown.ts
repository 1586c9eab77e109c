/** After the e2e suite: stop the serve process the setup started and remove the temp project. */
import * as fs from 'node:fs';
import { STATE_FILE, state } from './helpers';

export default async function globalTeardown(): Promise<void> {
  if (!fs.existsSync(STATE_FILE)) return;
  const s = state();
  try {
    process.kill(s.pid, 'SIGTERM');
  } catch {
    /* already gone */
  }
  if (!process.env.NORMLAB_E2E_KEEP) fs.rmSync(s.project, { recursive: true, force: true });
  fs.rmSync(STATE_FILE, { force: true });
}
