/**
 * What the Slurm executor writes into its scripts (no cluster needed; engine/jobs/slurm.test.ts
 * submits them to one): every config value is checked against its grammar when the config is
 * read or quoted where it is written, so no value can add a line to a script or a command to a line.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Project } from '../store/runs.js';
import './all.js';
import { executorSchema, type SlurmExecutorConfig } from './executor.js';
import { JobQueue } from './queue.js';
import { slurmScripts } from './slurm.js';

/** Where an injected command would leave its mark; each test checks none was made. */
const pwned = path.join(os.tmpdir(), `normlab-pwned-${process.pid}`);
const hostile = [`\n/bin/touch ${pwned}-nl`, `$(touch ${pwned}-dollar)`, `\`touch ${pwned}-tick\``, `'"; touch ${pwned}-quote; "'`, ' x'];
const marks = () => fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith(path.basename(pwned)));

const slurm = (fields: Record<string, unknown>) => executorSchema.safeParse({ kind: 'slurm', ...fields });

afterEach(() => {
  for (const f of marks()) fs.rmSync(path.join(os.tmpdir(), f), { force: true });
});

describe('Slurm executor config', () => {
  it('takes partition and account names, partition lists, long sbatch flags and shell lines', () => {
    const ok = slurm({
      partition: 'gpu,a100-80g.long+x',
      account: 'proj_42',
      time: '1-00:00:00',
      mem: '16G',
      extra_args: ['--qos=long', '--exclusive', '--comment=two words "and" $(no shell here)'],
      setup: ['module load cuda/12.2', 'source "$HOME/venv/bin/activate"\t# tab kept'],
      engine_command: 'node /shared/normlab.mjs',
    });
    expect(ok.success, JSON.stringify(ok.error?.issues)).toBe(true);
  });

  it('rejects a line break, a command substitution, a backtick or a quote in a field written raw into a directive', () => {
    for (const field of ['partition', 'account', 'time', 'mem'])
      for (const bad of hostile) expect(slurm({ [field]: `gpu${bad}` }).success, `${field}: ${JSON.stringify(bad)}`).toBe(false);
    expect(slurm({ partition: 'gpu,' }).success).toBe(false);
    expect(slurm({ time: '90\n' }).success).toBe(false);
  });

  it('extra_args: one long flag per entry without line breaks; setup and engine_command: one line per entry', () => {
    for (const bad of ['-q long', 'qos=long', '--qos=long\n--wrap=x', `--qos=long\n/bin/touch ${pwned}`, '--qos=a\rb', '--', '--=x', '--q os'])
      expect(slurm({ extra_args: [bad] }).success, JSON.stringify(bad)).toBe(false);
    expect(slurm({ setup: ['module load cuda', `echo\n/bin/touch ${pwned}`] }).success).toBe(false);
    expect(slurm({ setup: ['echo a\r'] }).success).toBe(false);
    expect(slurm({ engine_command: `node x.js\n/bin/touch ${pwned}` }).success).toBe(false);
  });

  it('a bad field fails the job when it is enqueued, naming the field, before any run or script exists', () => {
    const q = new JobQueue(Project.open(fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-slurm-cfg-'))), 'wasm');
    const sweep = (executor: Record<string, unknown>) => ({
      method: 'sweep',
      base: { method: 'lm-pretrain', model: { arch: 'llama', layers: 2, d_model: 16, heads: 2 } },
      grid: { 'model.norm': ['pre'] },
      executor,
    });
    expect(() => q.enqueue(sweep({ kind: 'slurm', partition: `gpu\n/bin/touch ${pwned}` }))).toThrow(/executor\.partition: a Slurm partition name/);
    expect(() => q.enqueue(sweep({ kind: 'slurm', extra_args: [`--qos=x\n/bin/touch ${pwned}`] }))).toThrow(/executor\.extra_args\.0/);
    expect(() => q.enqueue(sweep({ kind: 'slurm', setup: [`echo\n/bin/touch ${pwned}`] }))).toThrow(/executor\.setup\.0: one shell line per entry/);
    expect(q.project.listRuns()).toHaveLength(0);
  });
});

describe('Slurm scripts', () => {
  /** A project whose path and parent name hold every hostile value, and the scripts for its 2 children. */
  function hostileScripts(extra: Partial<SlurmExecutorConfig> = {}) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-slurm-script-'));
    // A real folder path: "a b 100% $(touch " / "tmp" / "normlab-pwned-N-dir)" and so on.
    const dir = path.join(root, `a b 100%A "q" 'q' $(touch ${pwned}-dir) \`touch ${pwned}-dirtick\` #x`);
    const project = Project.open(dir);
    const parent = project.createRun('sweep', {}, { seed: 0, name: `study${hostile.join('')}\r\n#SBATCH --wrap=x` });
    const children = [0, 1].map((seed) => project.createRun('lm-pretrain', {}, { seed, parent: parent.id }));
    const cfg = executorSchema.parse({
      kind: 'slurm',
      partition: 'debug',
      extra_args: ['--exclusive', `--comment=a b # "c" \\ $(touch ${pwned}-arg) \`touch ${pwned}-argtick\``],
      setup: ['echo setup ran'],
      ...extra,
    }) as SlurmExecutorConfig;
    // The engine prints the arguments it was given, one per line.
    const scripts = slurmScripts({
      cfg,
      parent,
      children,
      projectDir: dir,
      backend: 'wasm',
      engineCommand: `printf '<%s>\\n'`,
      logDir: path.join(parent.dir, 'slurm'),
    });
    return { root, dir, parent, children, scripts };
  }

  it('are valid bash whose directive block holds only comment lines, the name in one comment, paths and values quoted', () => {
    const { root, dir, parent, scripts } = hostileScripts();
    try {
      for (const script of [scripts.array, scripts.collect('4242')]) {
        execFileSync('bash', ['-n'], { input: script });
        const lines = script.split('\n');
        const body = lines.indexOf('set -euo pipefail');
        expect(body).toBeGreaterThan(0);
        // Before `set`, every line is the shebang, a directive or a comment: sbatch reads them all, bash none.
        for (const line of lines.slice(0, body)) expect(line.startsWith('#'), JSON.stringify(line)).toBe(true);
      }
      // sbatch's directive reader: double quotes group, a backslash escapes; `%` doubled is a literal % in a file name.
      const logDir = path.join(parent.dir, 'slurm').replace(/%/g, '%%').replace(/[\\"]/g, '\\$&');
      expect(scripts.array).toContain(`\n#SBATCH --output="${logDir}/%A_%a.out"\n`);
      expect(scripts.collect('4242')).toContain(`\n#SBATCH --output="${logDir}/collect-%j.out"\n`);
      expect(scripts.array).toContain(`\n#SBATCH --comment="a b # \\"c\\" \\\\ $(touch ${pwned}-arg) \`touch ${pwned}-argtick\`"\n`);
      expect(scripts.array).toContain('\n#SBATCH --exclusive\n');
      expect(scripts.array.split('\n').filter((l) => l.includes('study'))).toHaveLength(1);
      expect(dir).toContain(' ');
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('run by bash, they hand the engine the project path and ids intact and run nothing else', () => {
    const { root, dir, parent, children, scripts } = hostileScripts();
    try {
      const file = path.join(root, 'array.sbatch');
      fs.writeFileSync(file, scripts.array);
      const run = (script: string, task: number) =>
        execFileSync('bash', [script], { encoding: 'utf8', env: { ...process.env, SLURM_ARRAY_TASK_ID: String(task) } })
          .trim()
          .split('\n');
      for (const [i, child] of children.entries())
        expect(run(file, i)).toEqual(['setup ran', '<--project>', `<${dir}>`, '<--backend>', '<wasm>', '<run-child>', `<${child.id}>`]);
      fs.writeFileSync(file, scripts.collect('4242'));
      expect(run(file, 0)).toEqual(['setup ran', '<--project>', `<${dir}>`, '<--backend>', '<wasm>', '<collect>', `<${parent.id}>`]);
      expect(marks()).toEqual([]);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });

  it('a log folder with a line break or a backslash, or an engine command with a line break, fails in one line', () => {
    const { root, parent, children } = hostileScripts();
    try {
      const cfg = executorSchema.parse('slurm') as SlurmExecutorConfig;
      const make = (logDir: string, engineCommand = 'normlab') =>
        slurmScripts({ cfg, parent, children, projectDir: root, backend: 'wasm', engineCommand, logDir });
      expect(() => make(path.join(root, 'a\nb'))).toThrow(/holds a line break or control character: it cannot be written into an #SBATCH line$/);
      expect(() => make(path.join(root, 'a\\b'))).toThrow(/holds a backslash/);
      expect(() => make(root, `normlab\n/bin/touch ${pwned}`)).toThrow(/^the engine command holds a line break/);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  });
});
