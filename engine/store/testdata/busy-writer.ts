/**
 * A run writer for the crash test: appends metric lines and writes checkpoints as fast as it
 * can until it is killed. Usage: node --import tsx busy-writer.ts PROJECT_DIR
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Project } from '../runs.js';

const project = Project.open(process.argv[2]);
const run = project.createRun('lm-pretrain', { method: 'lm-pretrain' }, { seed: 0 });
run.markRunning('cpu');
process.stdout.write(`${run.id}\n`);
const payload = 'x'.repeat(2000);
let step = 0;
for (;;) {
  step += 1;
  run.appendMetric({ step, loss: 1 / step, payload });
  if (step % 25 === 0) {
    await run.saveCheckpoint(step, async (dir) => {
      fs.writeFileSync(path.join(dir, 'model.bin'), Buffer.alloc(200_000, step % 256));
      fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ step }));
    });
  }
}
