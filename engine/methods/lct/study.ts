/**
 * Job kind `lct-study`: the paper's Table 1 at NormLab scale. Trains the autoencoder and the
 * FID classifier once (child runs), then one `lct` child run per configuration of the five
 * switches (default: baseline iLCT and the full recipe), and writes one table of
 * FID 1-step / 2-step per configuration plus the classifier-predicted class histograms.
 */
import * as path from 'node:path';
import { z } from 'zod';
import { fail } from '../../core/errors.js';
import { writeFileAtomic, writeJsonAtomic } from '../../io/atomic.js';
import { completedSummary } from '../../jobs/context.js';
import { executorSchema } from '../../jobs/executor.js';
import { runSeeds, seedsField, SINGLE_SEED, type SeedStudy } from '../../jobs/seeds.js';
import { comparison, meanSd, noiseWarning, Z95, type Interval, type KeyResult } from '../../stats/stats.js';
import { baseConfig, registerJobKind } from '../../jobs/registry.js';
import { barPlot, writePlot } from '../../plot/index.js';
import { checkConsistencyNetConfig } from '../../models/consistency-net.js';
import { autoencoderTrainSchema } from './autoencoder-job.js';
import { classifierSchema } from './classifier.js';
import { imageDataSchema } from './data.js';
import { checkCurriculum } from './edm.js';
import { IMPROVEMENT_NAMES, improvementFields, lctEvalSchema, lctTrainSchema, networkSchema, type Improvements } from './lct.js';

const SWITCHES = IMPROVEMENT_NAMES;
const all = (on: boolean) => Object.fromEntries(SWITCHES.map((s) => [s, on])) as Improvements;
const OFF = all(false);
const ON = all(true);

const configurationSchema = z.object({ name: z.string().min(1).describe('row label in the table'), ...improvementFields(false) }).strict();

export const lctStudySchema = z
  .object({
    method: z.literal('lct-study'),
    ...baseConfig,
    seeds: seedsField,
    data: imageDataSchema.default(imageDataSchema.parse({})),
    autoencoder: autoencoderTrainSchema
      .omit({ method: true, name: true, seed: true, tags: true, data: true })
      .default(autoencoderTrainSchema.omit({ method: true, name: true, seed: true, tags: true, data: true }).parse({})),
    classifier: classifierSchema
      .omit({ method: true, name: true, seed: true, tags: true, data: true })
      .default(classifierSchema.omit({ method: true, name: true, seed: true, tags: true, data: true }).parse({})),
    ablation: z
      .enum(['baseline-vs-full', 'add-one', 'leave-one-out', 'custom'])
      .default('baseline-vs-full')
      .describe(
        'baseline-vs-full: 2 runs; add-one: baseline + each switch alone + full; leave-one-out: full minus each switch + full; custom: `configurations`',
      ),
    configurations: z.array(configurationSchema).default([]).describe('used when ablation is custom: one lct run per entry'),
    network: networkSchema.default(networkSchema.parse({})),
    executor: executorSchema,
    train: lctTrainSchema.default(lctTrainSchema.parse({})),
    eval: lctEvalSchema.default(lctEvalSchema.parse({})),
  })
  .strict();
export type LctStudyConfig = z.infer<typeof lctStudySchema>;

/** The rows an ablation asks for, each a name and the five switches. */
export function studyConfigurations(cfg: Pick<LctStudyConfig, 'ablation' | 'configurations'>): Array<{ name: string } & Improvements> {
  const rows: Array<{ name: string } & Improvements> = [];
  if (cfg.ablation === 'custom') {
    if (cfg.configurations.length === 0) fail('config', 'ablation custom needs at least one entry in configurations');
    return cfg.configurations.map((c) => ({ ...c }));
  }
  if (cfg.ablation !== 'leave-one-out') rows.push({ name: 'baseline iLCT', ...OFF });
  if (cfg.ablation === 'add-one') for (const s of SWITCHES) rows.push({ name: `+ ${s}`, ...OFF, [s]: true });
  if (cfg.ablation === 'leave-one-out') for (const s of SWITCHES) rows.push({ name: `full − ${s}`, ...ON, [s]: false });
  rows.push({ name: 'full recipe', ...ON });
  return rows;
}

const fmt = (v: unknown): string => (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(2) : '—');
/** FID ± its bootstrap SE, for tables. */
const fidSe = (v: unknown, se: unknown): string => (typeof se === 'number' ? `${fmt(v)} ± ${fmt(se)}` : fmt(v));

/** What the study reads of one lct child's FID bootstrap. */
interface FidBoot {
  resamples: number;
  seed: number;
  sample_seed: number;
  replicates_1step: number[];
  replicates_2step: number[];
}

/**
 * FID_a − FID_b with a normal bootstrap interval, diff ± z_{0.975} · SE. Paired when both runs drew
 * their samples from the same noise seed and n and bootstrapped them with the same seed and count
 * (their replicates share indices): SE = sd(rep_a − rep_b). Otherwise independent:
 * SE = √(SE_a² + SE_b²).
 */
export function fidDifference(
  a: { fid: number; se: number; boot: FidBoot; samples: number },
  b: { fid: number; se: number; boot: FidBoot; samples: number },
  steps: '1step' | '2step',
): { diff: number; se: number; ci95: Interval; paired: boolean; interval: string } {
  const diff = a.fid - b.fid;
  const paired = a.samples === b.samples && a.boot.sample_seed === b.boot.sample_seed && a.boot.seed === b.boot.seed && a.boot.resamples === b.boot.resamples;
  const ra = a.boot[`replicates_${steps}`];
  const rb = b.boot[`replicates_${steps}`];
  const se = paired ? meanSd(ra.map((x, i) => x - rb[i])).sd : Math.hypot(a.se, b.se);
  const how = paired
    ? `paired bootstrap (same noise seeds, same ${a.boot.resamples} resamples of the ${a.samples} samples)`
    : `independent bootstraps (${a.boot.resamples} and ${b.boot.resamples} resamples)`;
  return { diff, se, ci95: [diff - Z95 * se, diff + Z95 * se], paired, interval: `${how}, normal interval ± 1.96 SE` };
}

/** The study over seeds (each seed its own autoencoder, classifier and lct runs): FIDs per configuration. */
const LCT_SEEDS: SeedStudy = {
  rows: (s) =>
    Object.fromEntries(
      ((s.table as Record<string, unknown>[] | undefined) ?? []).map((r) => [
        String(r.configuration),
        { fid_1step: r.fid_1step as number, fid_2step: r.fid_2step as number, fid_1step_se: r.fid_1step_se as number, fid_2step_se: r.fid_2step_se as number },
      ]),
    ),
};

registerJobKind({
  name: 'lct-study',
  title: 'Latent consistency training: ablation study',
  description: 'Autoencoder + FID classifier once, then baseline iLCT vs the improved recipe (or any switch subset); one FID 1-step/2-step table.',
  schema: lctStudySchema,
  resumable: false,
  parent: true,
  async run(ctx, studyCfg) {
    if ((studyCfg.seeds?.length ?? 0) > 1) return runSeeds(ctx, studyCfg, LCT_SEEDS);
    const cfg = { ...studyCfg, seed: studyCfg.seeds?.[0] ?? studyCfg.seed };
    const rows = studyConfigurations(cfg);
    // Every check that needs no training runs first: curriculum, and the latent grid vs the network.
    checkCurriculum({ s0: cfg.train.s0, s1: cfg.train.s1, total: cfg.train.steps });
    checkConsistencyNetConfig({ ...cfg.network, latent_shape: cfg.autoencoder.latent_shape, norm: 'ln' });
    const total = rows.length + 2;
    // Stage 1: the autoencoder and the FID classifier (independent); stage 2 needs both.
    ctx.progress({ step: 0, total, phase: 'autoencoder + classifier' });
    const [aeOut, clfOut] = await ctx.runChildren([
      { key: 'autoencoder', name: 'lct-study autoencoder', config: { method: 'autoencoder-train', seed: cfg.seed, data: cfg.data, ...cfg.autoencoder } },
      { key: 'classifier', name: 'lct-study classifier', config: { method: 'image-classifier', seed: cfg.seed, data: cfg.data, ...cfg.classifier } },
    ]);
    const ae = { runId: aeOut.runId, summary: completedSummary(aeOut, 'lct-study autoencoder') };
    const clf = { runId: clfOut.runId, summary: completedSummary(clfOut, 'lct-study classifier') };
    ctx.progress({ step: 2, total, phase: 'lct', message: `${rows.length} configurations` });
    const outcomes = await ctx.runChildren(
      rows.map(({ name, ...improvements }) => ({
        key: `lct ${name}`,
        name: `lct ${name}`,
        config: {
          method: 'lct',
          seed: cfg.seed,
          autoencoder: ae.summary.model_dir,
          classifier: clf.summary.model_dir,
          improvements,
          network: cfg.network,
          train: cfg.train,
          eval: cfg.eval,
        },
      })),
    );
    const results: Array<{ name: string; improvements: Improvements; runId: string; summary: Record<string, unknown> }> = [];
    const missing: { configuration: string; run_id: string; status: string }[] = [];
    for (const [i, { name, ...improvements }] of rows.entries()) {
      const r = outcomes[i];
      if (!r.summary) {
        missing.push({ configuration: name, run_id: r.runId, status: r.status });
        continue;
      }
      results.push({ name, improvements, runId: r.runId, summary: r.summary });
      ctx.metric({ step: i + 1, configuration: name, fid_1step: r.summary.fid_1step, fid_2step: r.summary.fid_2step });
    }
    if (results.length === 0) fail('state', `no configuration of the study completed; normlab resume ${ctx.run.id} reruns them`);
    ctx.progress({ step: total, total, phase: 'table' });

    const label = String(results[0].summary.fid_label ?? 'FID (classifier features)');
    const floors = results[0].summary;
    const boot0 = floors.fid_bootstrap as FidBoot | undefined;
    // Every configuration against the baseline, paired over the shared noise seeds where it can be.
    const full = results.find((r) => SWITCHES.every((s) => r.improvements[s])) ?? results[results.length - 1];
    const base = results.find((r) => SWITCHES.every((s) => !r.improvements[s]));
    const arm = (r: (typeof results)[0], k: '1step' | '2step') => ({
      fid: Number(r.summary[`fid_${k}`]),
      se: Number(r.summary[`fid_${k}_se`]),
      boot: r.summary.fid_bootstrap as FidBoot,
      samples: Number(r.summary.samples),
    });
    const diffs =
      base && base.summary.fid_bootstrap
        ? results
            .filter((r) => r !== base && r.summary.fid_bootstrap)
            .map((r) => {
              const one = fidDifference(arm(r, '1step'), arm(base, '1step'), '1step');
              const two = fidDifference(arm(r, '2step'), arm(base, '2step'), '2step');
              return {
                name: r.name,
                one,
                two,
                key1: comparison(`${label} 1 step, ${r.name} − ${base.name}`, one.diff, one.ci95, 'lower', one.interval),
                key2: comparison(`${label} 2 steps, ${r.name} − ${base.name}`, two.diff, two.ci95, 'lower', two.interval),
              };
            })
        : [];
    const warnings: string[] = diffs.flatMap((d) =>
      [noiseWarning(d.key1.label, d.one.diff, d.one.ci95), noiseWarning(d.key2.label, d.two.diff, d.two.ci95)].filter((w): w is string => w !== null),
    );
    if (diffs.length) warnings.push(SINGLE_SEED);
    for (const w of warnings) ctx.log(`warning: ${w}`);
    const mark = (b: boolean) => (b ? '✓' : '·');
    const md = [
      `# Latent consistency training at NormLab scale: ${label}, lower is better`,
      '',
      `| configuration | Cauchy | diff. loss | OT | adaptive c | NsLN | ${label} 1 step | 2 steps |`,
      '|---|:-:|:-:|:-:|:-:|:-:|--:|--:|',
      ...results.map(
        (r) =>
          `| ${r.name} | ${SWITCHES.map((s) => mark(r.improvements[s])).join(' | ')} | ${fidSe(r.summary.fid_1step, r.summary.fid_1step_se)} | ${fidSe(r.summary.fid_2step, r.summary.fid_2step_se)} |`,
      ),
      '',
      `FID ± its bootstrap standard error (${boot0?.resamples ?? '?'} resamples of the generated samples, reference fixed).`,
      '',
      ...(diffs.length
        ? [
            `| ${label} difference | 1 step | 95% interval | verdict | 2 steps | 95% interval | verdict |`,
            '|---|--:|--:|---|--:|--:|---|',
            ...diffs.map(
              (d) =>
                `| ${d.name} − ${base!.name} | ${fmt(d.one.diff)} | [${fmt(d.one.ci95[0])}, ${fmt(d.one.ci95[1])}] | ${d.key1.verdict} | ${fmt(d.two.diff)} | [${fmt(d.two.ci95[0])}, ${fmt(d.two.ci95[1])}] | ${d.key2.verdict} |`,
            ),
            '',
            `Intervals: ${diffs[0].one.interval}.`,
            '',
          ]
        : []),
      `Floors on the same features, at the samples' n: ${floors.floor_images ?? floors.samples} training images ${fmt(floors.fid_floor_training_images)}, their autoencoder reconstructions ${fmt(floors.fid_floor_autoencoder)} ` +
        `(vs ${floors.ref_images} reference images${floors.floor_disjoint_from_reference === false ? ', which include them (a folder has no split)' : ', disjoint from them'}; classifier accuracy ${fmt(100 * Number(clf.summary.ref_accuracy))}%).`,
      '',
      ...warnings.map((w) => `**Warning:** ${w}\n`),
      '## Classifier-predicted class histogram of samples (fraction, 1 step / 2 steps)',
      '',
      `| configuration | ${((results[0].summary.class_names as string[]) ?? []).join(' | ')} |`,
      `|---|${((results[0].summary.class_names as string[]) ?? []).map(() => '--:').join('|')}|`,
      `| reference images | ${((results[0].summary.class_histogram_reference as number[]) ?? []).map((v) => v.toFixed(3)).join(' | ')} |`,
      ...results.flatMap((r) =>
        (['1step', '2step'] as const).map(
          (k) =>
            `| ${r.name}, ${k === '1step' ? '1 step' : '2 steps'} | ${((r.summary[`class_histogram_${k}`] as number[]) ?? []).map((v) => v.toFixed(3)).join(' | ')} |`,
        ),
      ),
      '',
      ...(missing.length
        ? [
            `Missing (did not complete; \`normlab resume ${ctx.run.id}\` reruns them): ${missing.map((m) => `${m.configuration} (${m.status})`).join(', ')}.`,
            '',
          ]
        : []),
    ].join('\n');
    await writeFileAtomic(path.join(ctx.run.artifactsDir, 'table.md'), md);
    const csv = [
      ['configuration', ...SWITCHES, 'fid_1step', 'fid_1step_se', 'fid_2step', 'fid_2step_se', 'run'].join(','),
      ...results.map((r) =>
        [
          JSON.stringify(r.name),
          ...SWITCHES.map((s) => String(r.improvements[s])),
          r.summary.fid_1step,
          r.summary.fid_1step_se ?? '',
          r.summary.fid_2step,
          r.summary.fid_2step_se ?? '',
          r.runId,
        ].join(','),
      ),
    ].join('\n');
    await writeFileAtomic(path.join(ctx.run.artifactsDir, 'table.csv'), csv + '\n');
    // One colour per arm and configuration in both figures (the arms' as on each configuration's page),
    // configurations by their place in the config, completed or not.
    const variants = ['1 step', '2 steps', 'reference images', ...rows.map((r) => r.name)];
    await writePlot(
      path.join(ctx.run.artifactsDir, 'fid.png'),
      await barPlot({
        title: `${label} per configuration`,
        xLabel: 'configuration',
        yLabel: `${label} (lower is better)`,
        groups: [
          { name: '1 step', values: results.map((r) => ({ label: r.name, value: Number(r.summary.fid_1step) })) },
          { name: '2 steps', values: results.map((r) => ({ label: r.name, value: Number(r.summary.fid_2step) })) },
        ],
        variants,
      }),
    );
    const classNames = (results[0].summary.class_names as string[]) ?? [];
    await writePlot(
      path.join(ctx.run.artifactsDir, 'class-histograms.png'),
      await barPlot({
        title: 'Classifier-predicted classes of 1-step samples',
        xLabel: 'class',
        yLabel: 'fraction of samples',
        groups: [
          ...results.map((r) => ({
            name: r.name,
            values: ((r.summary.class_histogram_1step as number[]) ?? []).map((v, i) => ({ label: classNames[i] ?? String(i), value: v })),
          })),
          {
            name: 'reference images',
            values: ((results[0].summary.class_histogram_reference as number[]) ?? []).map((v, i) => ({ label: classNames[i] ?? String(i), value: v })),
          },
        ],
        variants,
      }),
    );
    const table = results.map((r) => {
      const d = diffs.find((x) => x.name === r.name);
      return {
        configuration: r.name,
        ...r.improvements,
        fid_1step: r.summary.fid_1step,
        fid_1step_se: r.summary.fid_1step_se,
        fid_2step: r.summary.fid_2step,
        fid_2step_se: r.summary.fid_2step_se,
        ...(d
          ? {
              fid_1step_minus_baseline: d.one.diff,
              fid_1step_minus_baseline_ci95: d.one.ci95,
              fid_1step_minus_baseline_verdict: d.key1.verdict,
              fid_2step_minus_baseline: d.two.diff,
              fid_2step_minus_baseline_ci95: d.two.ci95,
              fid_2step_minus_baseline_verdict: d.key2.verdict,
            }
          : {}),
        run: r.runId,
      };
    });
    await writeJsonAtomic(path.join(ctx.run.artifactsDir, 'table.json'), table);
    ctx.log('\n' + md);
    const fullDiff = diffs.find((d) => d.name === full.name);
    return {
      key_result: fullDiff?.key1 ?? (full.summary.key_result as KeyResult),
      fid_label: label,
      table,
      warnings,
      fid_bootstrap: boot0 ? { resamples: boot0.resamples, seed: boot0.seed, sample_seed: boot0.sample_seed } : null,
      full_beats_baseline_1step: fullDiff ? fullDiff.key1.verdict === 'better' : null,
      full_beats_baseline_2step: fullDiff ? fullDiff.key2.verdict === 'better' : null,
      fid_floor_training_images: floors.fid_floor_training_images,
      fid_floor_autoencoder: floors.fid_floor_autoencoder,
      classifier_accuracy: clf.summary.ref_accuracy,
      autoencoder_recon_mse: ae.summary.ref_recon_mse,
      missing_children: missing,
      runs: { autoencoder: ae.runId, classifier: clf.runId, lct: results.map((r) => r.runId) },
    };
  },
});
