/**
 * `normlab`, the headless command line (README "Command line", a contract). Each command
 * prints human progress to stderr; with `--json`, one JSON object on stdout and nothing else.
 * Any failure prints `normlab: <one line>` and exits non-zero.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command, Option } from 'commander';
import type { BackendChoice } from '../backend/backend.js';
import { STREAMING_MODES, TOKEN_DTYPES, TOKENIZER_NAMES, type StreamingMode, type TokenDtype, type TokenizerName } from '../core/choices.js';
import { asNormLabError, fail } from '../core/errors.js';
import { NORMLAB_VERSION } from '../core/versions.js';
import { BACKEND_NAMES, type ChildState } from '../protocol/protocol.js';
import { keyResultValue } from '../stats/key-format.js';
import type { JobQueue } from '../jobs/queue.js';
import type { Project, Run } from '../store/runs.js';
import { progressReporter } from './progress.js';

/**
 * The engine's modules, loaded by the commands that use them: the job kinds load TensorFlow.js (seconds), which `normlab --help`
 * and `normlab` alone never need (they import only the modules above).
 */
async function loadEngine() {
  await import('../jobs/all.js');
  const [backend, children, config, dryRun, queue, registry, service, runs] = await Promise.all([
    import('../backend/backend.js'),
    import('../jobs/children.js'),
    import('../jobs/config.js'),
    import('../jobs/dry-run.js'),
    import('../jobs/queue.js'),
    import('../jobs/registry.js'),
    import('../service.js'),
    import('../store/runs.js'),
  ]);
  return { ...backend, ...children, ...config, ...dryRun, ...queue, ...registry, ...service, ...runs };
}
let engineModules: Promise<Awaited<ReturnType<typeof loadEngine>>> | undefined;
const engine = () => (engineModules ??= loadEngine());

const DEFAULT_PROJECT = 'normlab-project';

interface Globals {
  project: string;
  backend: BackendChoice;
  json?: boolean;
}

function out(json: boolean | undefined, obj: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(obj) + '\n' : human() + '\n');
}

/** The signal that stopped this command's run (its exit status is then 128 + its number: 130 for Ctrl-C). */
let stoppedBy: NodeJS.Signals | null = null;

/**
 * SIGTERM / SIGINT (a preemption, a Slurm time limit, scancel, Ctrl-C): the running trainer saves
 * a checkpoint at its next step boundary and the run ends interrupted, resumable from that step.
 * `before` clears the progress bar first, so the message is not drawn over. Returns the function
 * that removes the handlers.
 */
function stopOnSignals(queue: JobQueue, before: () => void = () => undefined): () => void {
  const onSignal = (sig: NodeJS.Signals) => {
    before();
    if (stoppedBy === null) process.stderr.write(`\n${sig}: saving a checkpoint at the next step boundary, then stopping (normlab resume continues)\n`);
    stoppedBy = sig;
    queue.interruptAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  };
}

/** Run a job to completion in this process with progress on stderr; returns the finished run. */
async function runToEnd(queue: JobQueue, start: () => Run): Promise<Run> {
  const reporter = progressReporter();
  const off = queue.on(reporter.onEvent);
  const stop = stopOnSignals(queue, reporter.stop);
  try {
    const run = start();
    await queue.wait(run.id);
    return queue.project.run(run.id);
  } finally {
    stop();
    reporter.stop();
    off();
  }
}

/** Poll the store until a run handed to Slurm has ended (its collect job finished it). */
async function waitUntilEnded(project: Project, run: Run): Promise<Run> {
  let r = run;
  while ((r.status === 'queued' || r.status === 'running') && r.record.slurm?.length) {
    await new Promise((res) => setTimeout(res, 2000));
    r = project.run(run.id);
  }
  return r;
}

function finished(run: Run, json?: boolean): void {
  const summary = run.readSummary();
  const submission = run.record.slurm?.at(-1);
  if (run.status === 'queued' && submission) {
    const body = { runId: run.id, status: run.status, dir: run.dir, slurm: submission };
    out(
      json,
      body,
      () =>
        `run ${run.id} submitted to Slurm: array job ${submission.array_job} (${submission.children.length} children), collect job ${submission.collect_job}\nfollow it with: normlab show ${run.id}`,
    );
    return;
  }
  const body = { runId: run.id, status: run.status, dir: run.dir, backend: run.record.backend, summary, error: run.record.error };
  if (run.status !== 'completed') {
    if (json) process.stdout.write(JSON.stringify(body) + '\n');
    fail((run.record.error?.code as never) ?? 'internal', run.record.error?.message ?? `run ${run.id} ended ${run.status}`);
  }
  out(json, body, () => `run ${run.id} completed (${run.dir})\n${JSON.stringify(summary, null, 2)}`);
}

/** A run's key result in a line: a fraction (top-1 accuracy) in percent, as the tables; other values with 4 decimals. */
const keyResult = (kr: { label: string; value: number; unit?: string } | null) => (kr ? `${kr.label} ${keyResultValue(kr).value}` : '');

/** Columns padded to their widest cell; no line ends in padding. */
function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) =>
      r
        .map((cell, c) => cell.padEnd(widths[c]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A run name for a table column: at most `max` characters. */
const clip = (s: string, max = 28) => (s.length > max ? `${s.slice(0, max - 1).trimEnd()}…` : s);

/** `normlab show` for a terminal: the record's main fields, the summary's scalars, artifacts and children. */
function formatShow(
  childCounts: (children: ChildState[]) => string,
  body: {
    id: string;
    name: string;
    method: string;
    status: string;
    backend: string | null;
    created: string;
    finished: string | null;
    dir: string;
    keyResult: { label: string; value: number; unit?: string } | null;
    error: { code: string; message: string } | null;
    summary: Record<string, unknown> | null;
    artifacts: string[];
    children?: ChildState[];
  },
): string {
  const scalar = (v: unknown) => v === null || ['string', 'number', 'boolean'].includes(typeof v);
  const lines = [
    `${body.id}  ${body.name}`,
    `  method    ${body.method}`,
    `  status    ${body.status}${body.error ? `: ${body.error.message}` : ''}`,
    `  backend   ${body.backend ?? '—'}`,
    `  created   ${body.created}${body.finished ? `, finished ${body.finished}` : ''}`,
    `  folder    ${body.dir}`,
    ...(body.keyResult ? [`  result    ${keyResult(body.keyResult)}`] : []),
  ];
  const summary = Object.entries(body.summary ?? {}).filter(([, v]) => scalar(v));
  if (summary.length) lines.push('summary', ...summary.map(([k, v]) => `  ${k}  ${typeof v === 'number' ? Number(v.toPrecision(6)) : String(v)}`));
  if (body.artifacts.length) lines.push(`artifacts (${body.artifacts.length})`, ...body.artifacts.map((a) => `  ${a}`));
  if (body.children?.length) lines.push(`children (${childCounts(body.children)})`, ...body.children.map((c) => `  ${c.id}  ${c.key}  ${c.status}`));
  lines.push('(the whole record and summary: normlab show --json)');
  return lines.join('\n');
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('normlab')
    .description('NormLab: normalization methods for transformers (LNS, LN removal, latent consistency, DopQ-ViT)')
    .version(NORMLAB_VERSION)
    .option('--project <dir>', 'project folder (runs live in <dir>/runs)', process.env.NORMLAB_PROJECT ?? DEFAULT_PROJECT)
    .addOption(new Option('--backend <name>', 'compute backend').choices(['auto', ...BACKEND_NAMES]).default('auto'))
    .option('--json', 'print one JSON object on stdout')
    .showHelpAfterError(false);

  const globals = (): Globals => program.opts<Globals>();
  const queue = async () => {
    const E = await engine();
    return new E.JobQueue(E.Project.open(globals().project), globals().backend);
  };

  /** Run to the end here; with --wait, also wait for what was handed to Slurm. */
  const runAndReport = async (start: (q: JobQueue) => Run, wait?: boolean) => {
    const q = await queue();
    let run = await runToEnd(q, () => start(q));
    if (wait) run = await waitUntilEnded(q.project, run);
    finished(run, globals().json);
  };

  const printDryRun = async (raw: Record<string, unknown>) => {
    const E = await engine();
    const r = await E.dryRun(raw, globals().project, globals().backend);
    out(globals().json, r, () => E.formatDryRun(r));
  };

  program
    .command('run')
    .argument('[config]', 'job config file (.yaml or .json)')
    .option('--help-config [method]', "print each job kind's (or one kind's) config fields, defaults and presets")
    .option('--wait', 'when children were submitted to Slurm, wait until the collect job has finished the run')
    .option('--dry-run', "print what a study or sweep would hand its executor (child runs; Slurm's sbatch scripts) and run nothing")
    .description('run a job (lm-pretrain, lns-study, ln-removal, lct-study, ptq-study, sweep, ...) to completion')
    .action(async (file: string | undefined, opts: { helpConfig?: string | true; wait?: boolean; dryRun?: boolean }) => {
      if (opts.helpConfig !== undefined) {
        const method = typeof opts.helpConfig === 'string' ? opts.helpConfig : undefined;
        const { helpConfig, configFields } = await import('./help-config.js');
        const { presetsFor } = await import('../jobs/presets.js');
        const E = await engine();
        const kinds = method ? [E.jobKind(method)] : E.jobKinds();
        const body = { kinds: kinds.map((k) => ({ name: k.name, fields: configFields(k), presets: presetsFor(k.name) })) };
        out(globals().json, body, () => helpConfig(method));
        return;
      }
      if (!file) fail('config', 'run needs a config file (or --help-config to list the config fields and presets)');
      const raw = (await engine()).readConfigFile(file);
      if (opts.dryRun) return printDryRun(raw);
      await runAndReport((q) => q.enqueue(raw), opts.wait);
    });

  program
    .command('sweep')
    .argument('<config>', 'sweep config: a base job, a grid and seeds (method: sweep may be left out)')
    .option('--wait', 'when children were submitted to Slurm, wait until the collect job has finished the sweep')
    .option('--dry-run', 'print the child runs and (executor slurm) the sbatch scripts the sweep would submit, and run nothing')
    .description('run a base job over a grid of config values × seeds through an executor; table by grid point')
    .action(async (file: string, opts: { wait?: boolean; dryRun?: boolean }) => {
      const raw = (await engine()).readConfigFile(file);
      if (raw.method !== undefined && raw.method !== 'sweep')
        fail('config', `config method: a sweep config has method "sweep" (or none), got "${String(raw.method)}"; use normlab run`);
      if (opts.dryRun) return printDryRun({ ...raw, method: 'sweep' });
      await runAndReport((q) => q.enqueue({ ...raw, method: 'sweep' }), opts.wait);
    });

  program
    .command('run-child')
    .argument('<run>', 'child run id')
    .description('execute one child run folder of a study or sweep in this process (what executors start); fresh or from its latest checkpoint')
    .action(async (id: string) => {
      const q = await queue();
      const stop = stopOnSignals(q);
      try {
        const run = q.runExisting(id);
        if (!run) return out(globals().json, { runId: id, status: 'completed' }, () => `run ${id} already completed`);
        await q.wait(run.id);
        finished(q.project.run(run.id), globals().json);
      } finally {
        stop();
      }
    });

  program
    .command('collect')
    .argument('<run>', 'parent run id')
    .description("finish a parent whose children ended (Slurm's collect job): write its comparison, missing children marked")
    .action(async (id: string) => {
      const q = await queue();
      const run = q.collect(id);
      if (!run)
        return out(globals().json, { runId: id, status: q.project.run(id).status }, () => `run ${id} is ${q.project.run(id).status}; nothing to collect`);
      await q.wait(run.id);
      finished(q.project.run(run.id), globals().json);
    });

  program
    .command('cancel')
    .argument('<run>', 'run id (a parent cancels its children: Slurm jobs and local processes)')
    .description('cancel a run that runs in another process or on Slurm')
    .action(async (id: string) => {
      const E = await engine();
      const project = E.Project.open(globals().project, false);
      const run = project.run(id);
      if (!['queued', 'running'].includes(run.status) && !project.children(run.id).some((c) => ['queued', 'running'].includes(c.status)))
        fail('state', `run ${run.id} is ${run.status}; nothing to cancel`);
      const actions = E.cancelEverywhere(project, run);
      out(globals().json, { runId: run.id, actions }, () => actions.join('\n') || 'nothing to cancel');
    });

  program
    .command('demo')
    .option('--full', 'run the full examples (assets/examples, about 15 minutes on 2 cores) instead of the small demo')
    .option('--seeds <list>', 'training seeds of every study, e.g. 0,1: tables give mean ± sd and key results a t interval over seeds')
    .description('run all four methods small on embedded data and print one results table')
    .action(async (opts: { full?: boolean; seeds?: string }) => {
      const { runDemo, formatDemoTable, parseSeeds } = await import('./demo.js');
      const seeds = opts.seeds === undefined ? undefined : parseSeeds(opts.seeds);
      const q = await queue();
      const reporter = progressReporter();
      const off = q.on(reporter.onEvent);
      const results = await runDemo(q, { full: Boolean(opts.full), seeds, onRun: (f) => process.stderr.write(`\n== ${f}\n`) }).finally(() => {
        reporter.stop();
        off();
      });
      out(globals().json, { project: q.project.dir, runs: results }, () => `\nNormLab demo results (project ${q.project.dir})\n\n${formatDemoTable(results)}`);
      if (results.some((r) => r.status !== 'completed')) fail('state', 'some demo runs did not complete; see the table above');
    });

  program
    .command('resume')
    .argument('<run>', 'run id (or unique prefix/suffix)')
    .option('--wait', 'when children were resubmitted to Slurm, wait until the collect job has finished the run')
    .description('continue an interrupted or cancelled run from its latest checkpoint (a study or sweep: only its unfinished children)')
    .action(async (id: string, opts: { wait?: boolean }) => {
      await runAndReport((q) => q.resume(id), opts.wait);
    });

  program
    .command('list')
    .description('list the runs of the project')
    .action(async () => {
      const E = await engine();
      const project = E.Project.open(globals().project, false);
      const all = project.listRuns();
      const runs = all.map((r) => {
        const isParent = jobKindOrNull(E.jobKind, r.record.method)?.parent;
        return { ...E.runSummary(r), ...(isParent ? { children: E.childStates(project, r) } : {}) };
      });
      // Human output: each parent followed by its children, indented, with Slurm's state where it knows them.
      const ids = new Set(runs.map((r) => r.id));
      const rows = runs
        .filter((r) => !r.parent || !ids.has(r.parent))
        .flatMap((r) => [
          [
            r.id,
            clip(r.name),
            r.method,
            r.status + (r.children?.length ? ` (children: ${E.childCounts(r.children)})` : ''),
            r.backend ?? '',
            keyResult(r.keyResult),
          ],
          ...runs
            .filter((c) => c.parent === r.id)
            .map((c) => {
              const slurm = r.children?.find((s) => s.id === c.id)?.slurm;
              return [`  ${c.id}`, clip(c.name), c.method, c.status + (slurm ? ` (slurm ${slurm})` : ''), c.backend ?? '', keyResult(c.keyResult)];
            }),
        ]);
      out(globals().json, { runs }, () => (runs.length === 0 ? 'no runs yet' : table([['id', 'name', 'method', 'status', 'backend', 'result'], ...rows])));
    });

  program
    .command('show')
    .argument('<run>', 'run id')
    .description('show a run: its record, summary and artifacts')
    .action(async (id: string) => {
      const E = await engine();
      const project = E.Project.open(globals().project, false);
      const run = project.run(id);
      const children = jobKindOrNull(E.jobKind, run.record.method)?.parent ? E.childStates(project, run) : undefined;
      const body = {
        ...E.runSummary(run),
        dir: run.dir,
        config: run.record.config,
        summary: run.readSummary(),
        artifacts: run.artifacts(),
        slurm: run.record.slurm,
        children,
      };
      out(globals().json, body, () => formatShow(E.childCounts, body));
    });

  program
    .command('export')
    .argument('<run>', 'run id')
    .requiredOption('--out <dir>', 'output folder')
    .option('--format <format>', 'hf (latest checkpoint as a HF model folder), csv (metrics), or a method-specific format', 'hf')
    .description('export a run’s model or metrics')
    .action(async (id: string, opts: { out: string; format: string }) => {
      const run = (await engine()).Project.open(globals().project, false).run(id);
      await exportRun(run, opts.out, opts.format);
      out(globals().json, { runId: run.id, format: opts.format, out: path.resolve(opts.out) }, () => `exported ${run.id} (${opts.format}) to ${opts.out}`);
    });

  program
    .command('make-tiny-hf')
    .argument('<family>', 'llama, qwen2, gemma2, gpt_neox or gpt2')
    .argument('<dir>', 'output folder')
    .option('--layers <n>', 'number of blocks', '8')
    .option('--width <n>', 'hidden size (a multiple of 16)', '64')
    .option('--seed <n>', 'random seed of the weights', '0')
    .description('write a tiny random HF checkpoint of a family (byte vocabulary), for offline examples and tests')
    .action(async (family: string, dir: string, opts: { layers: string; width: string; seed: string }) => {
      const { makeTinyHF } = await import('../models/tiny-hf.js');
      const cfg = await makeTinyHF(family, dir, { layers: Number(opts.layers), width: Number(opts.width), seed: Number(opts.seed) });
      out(globals().json, { family, out: path.resolve(dir), config: cfg }, () => `wrote a tiny random ${family} checkpoint to ${dir}`);
    });

  program
    .command('eval-lm')
    .requiredOption('--model <dir>', 'model folder (config.json + model.safetensors)')
    .option('--text <file>', 'text file to score')
    .option('--tokens <file>', 'flat little-endian .bin token file to score (nanoGPT-style uint16, or --token-dtype uint32)')
    .addOption(new Option('--token-dtype <dtype>', 'id type of the --tokens file').choices(TOKEN_DTYPES).default('uint16'))
    .addOption(
      new Option('--tokenizer <name>', "for --text (default: the model folder's tokenizer.json, else byte/gpt2 for 256-/50257-id models)").choices(
        TOKENIZER_NAMES,
      ),
    )
    .option('--seq <n>', 'window length (default: the model context, at most 2048)', (v) => Number.parseInt(v, 10))
    .addOption(
      new Option(
        '--streaming <mode>',
        'evaluate block by block (always), whole in memory (never), or by size (auto: float32 weights over 1 GiB or an in-memory evaluation over half the backend)',
      )
        .choices(STREAMING_MODES)
        .default('auto'),
    )
    .description('mean next-token cross-entropy (nats) of a model on a file')
    .action(
      async (opts: {
        model: string;
        text?: string;
        tokens?: string;
        tokenDtype: TokenDtype;
        tokenizer?: TokenizerName;
        seq?: number;
        streaming: StreamingMode;
      }) => {
        if (!opts.text === !opts.tokens) fail('config', 'eval-lm needs exactly one of --text FILE or --tokens FILE.bin');
        await (await engine()).initBackend(globals().backend);
        const { evalLM } = await import('./eval-lm.js');
        const progress = progressReporter();
        try {
          const r = await evalLM({
            ...opts,
            onProgress: (phase, step, total, message) => progress.onEvent({ kind: 'event', event: 'progress', runId: 'eval-lm', phase, step, total, message }),
          });
          progress.stop();
          out(
            globals().json,
            r,
            () => `loss ${r.loss.toFixed(6)} nats over ${r.tokens} tokens (ppl ${Math.exp(r.loss).toFixed(3)})${r.streamed ? ', block by block' : ''}`,
          );
        } finally {
          progress.stop();
        }
      },
    );

  program
    .command('eval-vit')
    .requiredOption('--model <dir>', 'ViT model folder (timm names: config.json + model.safetensors)')
    .option('--data <source>', 'mnist or an image folder', 'mnist')
    .option('--count <n>', 'evaluation images (default: all test images)', (v) => Number.parseInt(v, 10))
    .description('top-1 accuracy of a ViT on an image set')
    .action(async (opts: { model: string; data: string; count?: number }) => {
      await (await engine()).initBackend(globals().backend);
      const { evalViT } = await import('../methods/ptq/eval-vit.js');
      const r = await evalViT(opts);
      out(globals().json, r, () => `top-1 ${(100 * r.top1).toFixed(2)}% on ${r.images} images`);
    });

  program
    .command('serve')
    .option('--port <n>', 'port on 127.0.0.1 (0 = any free port)', (v) => Number.parseInt(v, 10), 7860)
    .option('--token <token>', 'launch token (default: random per launch)')
    .option('--allow <dir>', 'a folder outside the project the workbench may read (repeatable)', (v: string, all: string[]) => [...all, v], [] as string[])
    .description('serve the workbench and the engine protocol on 127.0.0.1 (browser mode)')
    .action(async (opts: { port: number; token?: string; allow: string[] }) => {
      const { serve } = await import('../server/serve.js');
      // A fresh clone whose install skipped the renderer build (or whose sources changed) builds it here.
      const { ensureRenderer } = await import('../../bin/build-renderer.mjs');
      const built = ensureRenderer();
      if (built.error) process.stderr.write(`normlab: ${built.error}; the page will say so\n`);
      const q = await queue();
      for (const dir of opts.allow) if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) fail('config', `--allow ${dir}: not a folder`);
      const server = await serve(new (await engine()).EngineService(q, { allow: opts.allow }), { port: opts.port, token: opts.token });
      out(globals().json, { url: server.url, port: server.port }, () => `NormLab serving on ${server.url}`);
    });

  program
    .command('backends')
    .description('list every compute backend: whether it loads, why not, the GPU adapter, and which one auto picks')
    .action(async () => {
      const r = await (await engine()).listBackends();
      out(globals().json, r, () =>
        [
          table([
            ['backend', 'loads', 'auto', 'detail'],
            ...r.backends.map((b) => [b.name, b.loads ? 'yes' : 'no', b.auto.used ? 'chosen' : b.auto.skipped ? 'skips it' : '', b.detail]),
          ]),
          ...r.backends.filter((b) => b.auto.skipped).map((b) => `auto skips ${b.name}: ${b.auto.skipped}`),
          `auto picks: ${r.auto ?? 'nothing (no backend loads)'}`,
        ].join('\n'),
      );
    });

  program
    .command('bench')
    .option('--vs-torch', 'also run the PyTorch twin and print the ratio')
    .option('--quick', 'fewer steps (for a smoke test)')
    .description('measure training and evaluation throughput on each loadable backend')
    .action(async (opts: { vsTorch?: boolean; quick?: boolean }) => {
      const { runBench } = await import('../bench/bench.js');
      const b = globals().backend;
      await runBench({ json: Boolean(globals().json), vsTorch: Boolean(opts.vsTorch), quick: Boolean(opts.quick), backends: b === 'auto' ? undefined : [b] });
    });

  return program;
}

/** A run's job kind, or null for a method this engine does not know (a run from a newer version). */
function jobKindOrNull<K>(jobKind: (method: string) => K, method: string): K | null {
  try {
    return jobKind(method);
  } catch {
    return null;
  }
}

/** `normlab export`: hf = latest checkpoint as a model folder; csv = metrics table; or a kind's own. */
export async function exportRun(run: Run, outDir: string, format: string): Promise<void> {
  const kind = (await engine()).jobKind(run.record.method);
  const custom = kind.exporters?.[format];
  fs.mkdirSync(outDir, { recursive: true });
  if (custom) return custom(run, outDir);
  if (format === 'hf') {
    const ckpt = run.latestCheckpoint();
    if (!ckpt) fail('not-found', `run ${run.id} has no checkpoint to export`);
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(ckpt.dir, f), path.join(outDir, f));
    return;
  }
  if (format === 'csv') {
    const metrics = run.readMetrics();
    const cols = [...new Set(metrics.flatMap((m) => Object.keys(m)))].filter((c) => metrics.every((m) => m[c] === undefined || typeof m[c] !== 'object'));
    const lines = [cols.join(','), ...metrics.map((m) => cols.map((c) => (m[c] === undefined ? '' : String(m[c]))).join(','))];
    fs.writeFileSync(path.join(outDir, 'metrics.csv'), lines.join('\n') + '\n');
    const summary = run.readSummary();
    if (summary) fs.writeFileSync(path.join(outDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    return;
  }
  fail('config', `unknown export format "${format}": expected hf, csv${kind.exporters ? ', ' + Object.keys(kind.exporters).join(', ') : ''}`);
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const e = asNormLabError(err);
    process.stderr.write(`normlab: ${e.message}\n`);
    process.exitCode = stoppedBy ? 128 + os.constants.signals[stoppedBy] : 1;
  }
}
