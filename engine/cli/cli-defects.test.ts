/**
 * The command line as a new user meets it: `show` of a missing project says so and makes no
 * folder, `show` prints a readable page (JSON only with --json), `list` has a name column and no
 * padded line ends, a misspelt key gets a "did you mean", Ctrl-C stops a run with a checkpoint and
 * exit status 130, and `npm start` without Electron serves browser mode without a stack trace.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_ENTRY } from '../core/app-paths.js';
import '../jobs/all.js';
import { resolveConfig } from '../jobs/config.js';
import { Project } from '../store/runs.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const temp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-cli-'));
  dirs.push(d);
  return d;
};
const cli = (project: string, ...args: string[]) => spawnSync(process.execPath, [CLI_ENTRY, '--project', project, ...args], { encoding: 'utf8' });

describe('normlab show and list', () => {
  it('show of a missing project is one line and creates nothing', () => {
    const missing = path.join(temp(), 'no-such-project');
    const r = cli(missing, 'show', 'abc');
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`normlab: project folder ${missing} does not exist (give one with --project DIR)`);
    expect(fs.existsSync(missing)).toBe(false);
  }, 60_000);

  it('show prints a page for people (JSON with --json); list has a name column and no padded line ends', () => {
    const project = Project.open(temp());
    const run = project.createRun('lm-pretrain', { method: 'lm-pretrain' }, { seed: 0, name: 'a rather long run name for the table column' });
    run.writeSummary({ final_val_loss: 2.5, key_result: { label: 'val loss', value: 2.5 } });
    run.markFinished('completed');
    const shown = cli(project.dir, 'show', run.id);
    expect(shown.status, shown.stderr).toBe(0);
    expect(shown.stdout.startsWith(`${run.id}  a rather long run name`)).toBe(true);
    expect(shown.stdout).toMatch(/^ {2}status {4}completed$/m);
    expect(shown.stdout).toMatch(/^ {2}final_val_loss {2}2\.5$/m);
    expect(JSON.parse(cli(project.dir, '--json', 'show', run.id).stdout).id).toBe(run.id);
    const listed = cli(project.dir, 'list');
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^id +name +method +status +backend +result$/);
    expect(lines[1]).toContain('a rather long run name for…');
    for (const line of lines) expect(line).toBe(line.trimEnd());
  }, 60_000);
});

describe('configs', () => {
  it('a misspelt key is answered with the closest known one', () => {
    expect(() => resolveConfig({ method: 'lm-pretrain', train: { stepz: 20 } })).toThrow('config train: unknown field "stepz" (did you mean "steps"?)');
    expect(() => resolveConfig({ method: 'lm-pretrain', modle: {} })).toThrow('config (top level): unknown field "modle" (did you mean "model"?)');
  });
});

describe('Ctrl-C', () => {
  it('stops the run at a step boundary with a checkpoint, one message, and exit status 130', async () => {
    const dir = temp();
    const config = path.join(dir, 'long.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        method: 'lm-pretrain',
        model: { arch: 'llama', layers: 1, d_model: 16, heads: 2 },
        train: { steps: 100000, batch: 2, seq: 16, warmup: 2, eval_every: 100000, eval_windows: 1, checkpoint_every: 100000, log_every: 1 },
      }),
    );
    const project = path.join(dir, 'project');
    const proc = spawn(process.execPath, [CLI_ENTRY, '--project', project, '--backend', 'wasm', 'run', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const logged = () => {
      const runs = fs.existsSync(path.join(project, 'runs')) ? Project.open(project, false).listRuns() : [];
      return runs.length > 0 && runs[0].readMetrics().length > 3;
    };
    for (let i = 0; !logged(); i++) {
      if (i > 1200) throw new Error(`the run did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    proc.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr.match(/SIGINT: saving a checkpoint/g)).toHaveLength(1);
    expect(stderr.trimEnd().split('\n').pop()).toMatch(/^normlab: run \S+ ended interrupted$/);
    expect(stderr).not.toMatch(/^\s+at /m);
    const run = Project.open(project, false).listRuns()[0];
    expect(run.status).toBe('interrupted');
    expect(run.latestCheckpoint()).not.toBeNull();
  }, 120_000);
});

describe('npm start', () => {
  const electronInstalled = fs.existsSync(path.join(path.dirname(CLI_ENTRY), '..', 'node_modules', 'electron', 'path.txt'));
  it.skipIf(electronInstalled)(
    'without Electron says so in one line and serves browser mode, with no download attempt or stack',
    async () => {
      const proc = spawn(process.execPath, [path.join(path.dirname(CLI_ENTRY), 'start.js'), '--port', '0', '--project', temp()], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
      proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
      try {
        for (let i = 0; !/serving on http/.test(out); i++) {
          if (i > 1200 || proc.exitCode !== null) throw new Error(`npm start did not serve: ${out}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        expect(out).toContain('normlab: the Electron binary is not installed (offline install); serving browser mode instead.');
        expect(out).not.toMatch(/Downloading|^\s+at /m);
      } finally {
        proc.kill('SIGKILL');
      }
    },
    90_000,
  );
});
