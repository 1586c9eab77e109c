import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../backend/backend.js';
import { GPT2, gpt2ConfigFromJson } from '../../models/gpt2.js';
import type { NormSite } from '../../models/lm.js';
import { toHfLnFree } from './export.js';
import { fakeLayerNorm, FakeLNSet, removalSchedule } from './fake-ln.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const EOT = 7;
const B = 2;
const T = 8;
// EOT at (0, 3) and (1, 5); the EOT at (1, 0) is position 0, which the BOS rule owns.
const X = Int32Array.from({ length: B * T }, (_, i) => ([3, 8, 13].includes(i) ? EOT : (i * 11 + 5) % 50));
const isEot = (n: number) => X[n] === EOT && n % T !== 0;

function model(): GPT2 {
  const m = new GPT2(gpt2ConfigFromJson({ vocab_size: 50, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 }), 5);
  for (const [name, v] of m.params.vars) {
    if (/ln_(1|2|f)\.weight$/.test(name)) v.assign(tf.add(1, tf.randomNormal(v.shape, 0, 0.2, 'float32', 7)));
    if (/ln_(1|2|f)\.bias$/.test(name)) v.assign(tf.randomNormal(v.shape, 0, 0.2, 'float32', 8));
  }
  // Give the EOT embedding a large norm, as real EOT tokens have: its sigma is then clearly apart.
  const wte = m.params.get('transformer.wte.weight');
  wte.assign(
    tf.mul(
      wte,
      tf.tensor2d(
        Array.from({ length: 50 }, (_, v) => (v === EOT ? 20 : 1)),
        [50, 1],
      ),
    ),
  );
  return m;
}

/** Per-token std sqrt(Var + eps) of a (B, T, C) tensor, on the host. */
async function tokenStds(x: tf.Tensor): Promise<Float64Array> {
  const C = x.shape[2]!;
  const d = await x.data();
  const out = new Float64Array(d.length / C);
  for (let n = 0; n < out.length; n++) {
    let mu = 0;
    for (let c = 0; c < C; c++) mu += d[n * C + c];
    mu /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (d[n * C + c] - mu) ** 2;
    out[n] = Math.sqrt(v / C + 1e-5);
  }
  return out;
}

const meanOf = (s: Float64Array, keep: (n: number) => boolean) => {
  let a = 0;
  let k = 0;
  s.forEach((v, n) => keep(n) && ((a += v), k++));
  return a / k;
};

/** The residual stream entering each block (layer -1 = embeddings) on X, without hooks. */
async function residuals(m: GPT2): Promise<Float64Array[]> {
  const keep: tf.Tensor[] = [];
  tf.tidy(() => {
    m.forward(tf.tensor2d(X, [B, T], 'int32'), { residual: (_l, r) => keep.push(tf.keep(tf.clone(r))) });
  });
  const out: Float64Array[] = [];
  for (const r of keep) {
    out.push(await tokenStds(r));
    r.dispose();
  }
  return out;
}

async function step(m: GPT2, set: FakeLNSet, x: Int32Array = X): Promise<void> {
  set.setTokens(x, B, T);
  tf.tidy(() => {
    m.forward(tf.tensor2d(x, [B, T], 'int32'), set.hooks(true));
  });
  await set.commit();
}

describe('special-token mode (the official code)', () => {
  it('measures sigma_avg on positions 1.., sigma_bos on position 0 at every site, sigma_eot on EOT tokens for the ln_1 V path only', async () => {
    const m = model();
    const set = new FakeLNSet(m.params, 2, { momentum: 0.9, eps: 1e-5, ln1Sigma: 'shared', special: true }, EOT);
    await step(m, set);
    const [emb, after0, after1] = await residuals(m);
    const sites: [NormSite, Float64Array][] = [
      [{ layer: 0, which: 'ln_1_qk' }, emb],
      [{ layer: 0, which: 'ln_1_v' }, emb],
      [{ layer: 1, which: 'ln_1_v' }, after0],
      [{ layer: -1, which: 'ln_f' }, after1],
    ];
    for (const [site, s] of sites) {
      expect(set.sigma(site)).toBeCloseTo(
        meanOf(s, (n) => n % T !== 0),
        5,
      );
      expect(set.sigmaBos(site)).toBeCloseTo(
        meanOf(s, (n) => n % T === 0),
        5,
      );
      if (site.which === 'ln_1_v') expect(set.sigmaEot(site)).toBeCloseTo(meanOf(s, isEot), 5);
      else expect(set.sigmaEot(site)).toBeNull();
    }
    // The three differ clearly here (EOT embeddings are 20x larger), so the test can tell them apart.
    const v0 = { layer: 0, which: 'ln_1_v' } as const;
    expect(set.sigmaEot(v0)! / set.sigma(v0)!).toBeGreaterThan(1.5);
    set.dispose();
    m.dispose();
  });

  it('divides position 0 by sigma_bos and (V path) EOT tokens by sigma_eot until the EOT and BOS events, then exports as one sigma per site', async () => {
    const m = model();
    const set = new FakeLNSet(m.params, 2, { momentum: 0.9, eps: 1e-5, ln1Sigma: 'shared', special: true }, EOT);
    await step(m, set);
    const events = removalSchedule(2, { start: 1, gapLn2: 1, gapLn1qk: 1, gapLn1v: 1, gapEot: 2, gapBos: 10, special: true });
    expect(events.slice(-3).map((e) => [e.kind, e.step])).toEqual([
      ['ln_f', 7],
      ['eot', 9],
      ['bos', 19],
    ]);
    for (const e of events.slice(0, -2)) set.apply(e);
    expect(() => set.frozenSigmas()).toThrow(/EOT and BOS events have not run/);
    // What each ln_1 path of block 0 computes, against FakeLN with the per-token sigma by hand.
    const check = async (expectSigma: (site: NormSite, n: number) => number) => {
      const got = new Map<string, { x: tf.Tensor; y: tf.Tensor }>();
      const hooks = set.hooks(false);
      set.setTokens(X, B, T);
      tf.tidy(() => {
        m.forward(tf.tensor2d(X, [B, T], 'int32'), {
          norm: (site, x, real) => {
            const y = hooks.norm!(site, x, real);
            if (site.layer === 0 && site.which !== 'ln_2') got.set(site.which, { x: tf.keep(tf.clone(x)), y: tf.keep(tf.clone(y)) });
            return y;
          },
        });
      });
      for (const which of ['ln_1_qk', 'ln_1_v'] as const) {
        const site = { layer: 0, which };
        const { x, y } = got.get(which)!;
        const sig = tf.tensor3d(
          Float32Array.from({ length: B * T }, (_, n) => expectSigma(site, n)),
          [B, T, 1],
        );
        const want = fakeLayerNorm(x, sig, m.params.get('transformer.h.0.ln_1.weight'), m.params.get('transformer.h.0.ln_1.bias'));
        expect((await tf.max(tf.abs(tf.sub(y, want))).data())[0]).toBeLessThan(1e-5);
        tf.dispose([x, y, sig, want]);
      }
    };
    const v0 = { layer: 0, which: 'ln_1_v' } as const;
    const [avg, bos, eot] = [set.sigma(v0)!, set.sigmaBos(v0)!, set.sigmaEot(v0)!];
    await check((site, n) => (n % T === 0 ? bos : site.which === 'ln_1_v' && isEot(n) ? eot : avg));
    set.apply(events[events.length - 2]); // EOT event: EOT tokens use sigma_avg
    await check((_site, n) => (n % T === 0 ? bos : avg));
    set.apply(events[events.length - 1]); // BOS event: every token uses sigma_avg
    await check(() => avg);
    // Now the hooked model is the LN-free model with one sigma per site, and its HF export agrees.
    const sigmas = set.frozenSigmas();
    const free = new GPT2(gpt2ConfigFromJson({ ...m.hfConfig(), normlab_ln_sigmas: sigmas }));
    const t = m.checkpointTensors();
    free.loadCheckpointTensors(t);
    const host = new Map(
      await Promise.all([...t].map(async ([k, v]) => [k, { dtype: 'F32' as const, shape: v.shape, data: (await v.data()) as Float32Array }] as const)),
    );
    for (const v of t.values()) v.dispose();
    const hf = toHfLnFree(free.hfConfig(), host);
    const plain = new GPT2(gpt2ConfigFromJson(hf.config));
    plain.loadCheckpointTensors(new Map([...hf.tensors].map(([k, v]) => [k, tf.tensor(v.data as Float32Array, v.shape)])));
    set.setTokens(X, B, T);
    const d = tf.tidy(() => {
      const idx = tf.tensor2d(X, [B, T], 'int32');
      const a = m.forward(idx, set.hooks(false));
      return [tf.max(tf.abs(tf.sub(a, free.forward(idx)))), tf.div(tf.max(tf.abs(tf.sub(a, plain.forward(idx)))), tf.max(tf.abs(a)))];
    });
    expect((await d[0].data())[0]).toBeLessThan(1e-5);
    expect((await d[1].data())[0]).toBeLessThan(1e-5);
    tf.dispose(d);
    for (const x of [set, free, plain, m]) x.dispose();
  });
});

describe('sigma EMA and the auxiliary loss mask', () => {
  it('updates once per step over all its forwards\u2019 tokens, with momentum^(tokens / momentum_tokens)', async () => {
    const m = model();
    const lnf = { layer: -1, which: 'ln_f' } as const;
    const other = Int32Array.from(X, (v, i) => (v * 3 + i) % 50);
    const sOf = async (x: Int32Array) => {
      const set = new FakeLNSet(m.params, 2, { momentum: 0.9, eps: 1e-5, ln1Sigma: 'shared', special: false });
      await step(m, set, x);
      const s = set.sigma(lnf)!;
      set.dispose();
      return s;
    };
    const [a, b] = [await sOf(X), await sOf(other)];
    // Two forwards of 16 tokens, momentum 0.9 per 8 tokens: one update with 0.9^4 on their mean.
    const set = new FakeLNSet(m.params, 2, { momentum: 0.9, momentumTokens: 8, eps: 1e-5, ln1Sigma: 'shared', special: false });
    for (const x of [X, other]) {
      set.setTokens(x, B, T);
      tf.tidy(() => {
        m.forward(tf.tensor2d(x, [B, T], 'int32'), set.hooks(true));
      });
    }
    await set.commit(); // the first commit initializes from the step's mean
    expect(set.sigma(lnf)).toBeCloseTo((a + b) / 2, 5);
    set.setTokens(X, B, T);
    tf.tidy(() => {
      m.forward(tf.tensor2d(X, [B, T], 'int32'), set.hooks(true));
    });
    await set.commit(); // one forward of 16 tokens: momentum 0.9^2
    expect(set.sigma(lnf)).toBeCloseTo(0.81 * ((a + b) / 2) + 0.19 * a, 5);
    set.dispose();
    m.dispose();
  });

  it('a step split into micro-batches (each taking its rows of the token masks) gives the sigmas of the unsplit step', async () => {
    const m = model();
    const opts = { momentum: 0.5, eps: 1e-5, ln1Sigma: 'shared' as const, special: true };
    const rows = [X.subarray(0, T), X.subarray(T)];
    // One step over both rows, forwarded as two micro-batches of one row ...
    const split = new FakeLNSet(m.params, 2, opts, EOT);
    split.setTokens(X, B, T);
    for (const r of rows) {
      tf.tidy(() => {
        m.forward(tf.tensor2d(r, [1, T], 'int32'), split.hooks(true));
      });
    }
    await split.commit();
    // ... equals the same step forwarded at once.
    const whole = new FakeLNSet(m.params, 2, opts, EOT);
    await step(m, whole);
    const a = split.snapshot();
    const b = whole.snapshot();
    for (const k of Object.keys(b)) {
      for (const f of ['sigma', 'sigma_bos', 'sigma_eot'] as const) {
        if (b[k][f] === null) expect(a[k][f], `${k} ${f}`).toBeNull();
        else expect(a[k][f], `${k} ${f}`).toBeCloseTo(b[k][f]!, 5);
      }
    }
    // Row 1 alone has an EOT past position 0; had the masks not followed the rows, sigma_eot would differ.
    expect(split.sigmaEot({ layer: 0, which: 'ln_1_v' })).not.toBeNull();
    split.dispose();
    whole.dispose();
    m.dispose();
  });

  it('leaves position 0 and EOT tokens out of the aux target whenever the tokenizer has an EOT id, special mode or not', () => {
    const m = model();
    for (const special of [false, true]) {
      const set = new FakeLNSet(m.params, 2, { momentum: 0.9, eps: 1e-5, ln1Sigma: 'shared', special }, EOT);
      set.setTokens(X, B, T);
      expect(Array.from(set.auxExclude.dataSync())).toEqual(Array.from({ length: B * T }, (_, n) => (n % T === 0 || isEot(n) ? 1 : 0)));
      set.dispose();
    }
    const noEot = new FakeLNSet(m.params, 2, { momentum: 0.9, eps: 1e-5, ln1Sigma: 'shared', special: false }, null);
    noEot.setTokens(X, B, T);
    expect(Array.from(noEot.auxExclude.dataSync())).toEqual(Array.from({ length: B * T }, (_, n) => (n % T === 0 ? 1 : 0)));
    noEot.dispose();
    m.dispose();
  });
});
