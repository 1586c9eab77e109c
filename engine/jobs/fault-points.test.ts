/**
 * Every stop is a checkpoint, every resume is the same run (issue 23): a real `normlab` process
 * killed (SIGKILL) at each fault point (engine/core/fault-points.ts) and resumed with `normlab
 * resume` gives the summary and metric lines, its children's too, of the same config run
 * uninterrupted, exactly: on the wasm backend a resumed run reproduces them bit for bit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Project } from '../store/runs.js';
import { cli, faultPasses, topRun, unfinishedRuns, type FaultPass } from '../testing/cli-runs.js';
import { tinyLmPretrain, tinyLnRemoval, tinyPtqStudy } from '../testing/fault-jobs.js';
import { tempDir } from '../testing/helpers.js';
import { resultDiffs, runResult, type RunResult } from '../testing/run-results.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** The config run uninterrupted (listing the fault points it passes), its results and its file. */
function straight(config: Record<string, unknown>): { file: string; result: RunResult; passes: FaultPass[] } {
  const dir = tempDir('fault-points');
  dirs.push(dir);
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config));
  const project = path.join(dir, 'straight');
  const r = cli(project, ['run', file], 'trace');
  expect(r.status, r.stderr).toBe(0);
  return { file, result: runResult(Project.open(project, false), topRun(project)!), passes: faultPasses(project, r.stderr) };
}

/** The pass of `point` in a run of `method` (the last one when there are several). */
function passOf(passes: FaultPass[], point: string, method: string): string {
  const pass = passes.filter((p) => p.point === point && p.method === method).pop();
  expect(pass, `${point} in ${method}`).toBeDefined();
  return `${pass!.point}#${pass!.n}`;
}

/** The config run killed at `target` (POINT#N), then resumed: where its results differ from `want`. */
function killedAndResumed(file: string, target: string, want: RunResult): string[] {
  const project = path.join(path.dirname(file), target.replace('#', '-'));
  const killed = cli(project, ['run', file], target);
  expect(killed.signal, `${target}: ${killed.stderr}`).toBe('SIGKILL');
  const run = topRun(project)!;
  const resumed = cli(project, ['resume', run.id]);
  expect(resumed.status, resumed.stderr).toBe(0);
  expect(unfinishedRuns(project)).toEqual([]);
  const store = Project.open(project, false);
  return resultDiffs(runResult(store, store.run(run.id)), want);
}

describe('a run killed at a fault point resumes to the uninterrupted results', () => {
  const lm = (() => {
    let ref: ReturnType<typeof straight> | null = null;
    return () => (ref ??= straight(tinyLmPretrain));
  })();

  it('after the last step, before the final checkpoint', () => {
    const { file, result, passes } = lm();
    expect(killedAndResumed(file, passOf(passes, 'after-last-step', 'lm-pretrain'), result)).toEqual([]);
  }, 120_000);

  it('after the final checkpoint, before the final evaluation and summary', () => {
    const { file, result, passes } = lm();
    expect(killedAndResumed(file, passOf(passes, 'after-final-checkpoint', 'lm-pretrain'), result)).toEqual([]);
  }, 120_000);

  it("between an LN-removal arm's export of the LN-free model and its summary, and the study's own export", () => {
    const { file, result, passes } = straight(tinyLnRemoval);
    const exports = passes.filter((p) => p.point === 'after-export');
    expect(exports).toHaveLength(2); // the removal arm's, then the study's copy
    for (const p of exports) expect(killedAndResumed(file, `${p.point}#${p.n}`, result), `${p.point}#${p.n}`).toEqual([]);
  }, 240_000);

  it("during a study's collect: its children done, its tables and summary not written", () => {
    const { file, result, passes } = straight(tinyPtqStudy);
    expect(killedAndResumed(file, passOf(passes, 'children-done', 'ptq-study'), result)).toEqual([]);
  }, 180_000);

  it("after a study's summary, before its end state: its own metric lines are not logged twice", () => {
    const { file, result, passes } = straight(tinyPtqStudy);
    expect(killedAndResumed(file, passOf(passes, 'after-summary', 'ptq-study'), result)).toEqual([]);
  }, 180_000);

  it("after a trainer's summary: the evaluation it logged after its final checkpoint is not logged twice", () => {
    const ae = {
      method: 'autoencoder-train',
      seed: 0,
      data: { source: 'mnist', count: 128, ref_count: 64 },
      steps: 6,
      batch: 16,
      hidden: 16,
      checkpoint_every: 3,
    };
    const { file, result, passes } = straight(ae);
    expect(killedAndResumed(file, passOf(passes, 'after-summary', 'autoencoder-train'), result)).toEqual([]);
  }, 120_000);
});
