/**
 * A second process that owns a run: resumes it (taking the run's lock), prints "held", and keeps
 * it until killed. Usage: node --import tsx hold-run.ts PROJECT_DIR RUN_ID
 */
import { Project } from '../runs.js';

const run = Project.open(process.argv[2]).run(process.argv[3]);
run.acquire();
run.markRunning('cpu');
process.stdout.write('held\n');
setInterval(() => undefined, 1000);
