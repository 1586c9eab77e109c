import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Project, releaseLiveRun } from '../store/runs.js';
import { cancelEverywhere, childCounts, childStates } from './children.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

function parentWithChildren(): { project: Project; parent: string; children: string[] } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-children-'));
  dirs.push(dir);
  const project = Project.open(dir);
  const parent = project.createRun('sweep', {}, { seed: 0 });
  const children = ['a', 'b', 'c'].map((key) => {
    const c = project.createRun('lm-pretrain', {}, { seed: 0, parent: parent.id, name: key });
    c.update({ child_key: key, pid: null }); // queued, owned by no process (as executors leave them)
    releaseLiveRun(c.id);
    return c;
  });
  children[0].appendMetric({ step: 4, loss: 2.5 });
  children[0].appendMetric({ step: 6, val_loss: 2.4 });
  children[0].markFinished('completed');
  parent.update({ status: 'queued', pid: null });
  releaseLiveRun(parent.id);
  return { project, parent: parent.id, children: children.map((c) => c.id) };
}

describe('children of a parent run', () => {
  it('lists each child with its key, state and latest training loss', () => {
    const { project, parent, children } = parentWithChildren();
    const states = childStates(project, project.run(parent));
    const a = states.find((s) => s.id === children[0])!;
    expect(a).toMatchObject({ key: 'a', status: 'completed', step: 4, loss: 2.5, slurm: null });
    expect(states.filter((s) => s.status === 'queued').map((s) => s.key)).toEqual(expect.arrayContaining(['b', 'c']));
    expect(childCounts(states)).toBe('2 queued, 1 completed');
  });

  it('cancelling the parent marks it and its queued children cancelled and leaves the completed one', () => {
    const { project, parent, children } = parentWithChildren();
    cancelEverywhere(project, project.run(parent));
    expect(project.run(parent).status).toBe('cancelled');
    expect(children.map((id) => project.run(id).status)).toEqual(['completed', 'cancelled', 'cancelled']);
  });
});
