import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it, expect } from 'vitest';
import { PNG } from 'pngjs';
import { NormLabError } from '../core/errors.js';
import {
  barPlot,
  barPlotSpec,
  barPlotSvg,
  heatmap,
  heatmapSvg,
  histogram,
  histogramWithLevels,
  histogramWithLevelsSvg,
  linePlot,
  linePlotSpec,
  linePlotSvg,
  scatterWithRules,
  scatterWithRulesSvg,
  writePlot,
} from './index.js';

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Check the PNG signature and read width/height from the IHDR chunk. */
function pngSize(png: Uint8Array): { width: number; height: number } {
  expect(Array.from(png.subarray(0, 8))).toEqual(SIGNATURE);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  expect(String.fromCharCode(...png.subarray(12, 16))).toBe('IHDR');
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

function decode(png: Uint8Array): PNG {
  return PNG.sync.read(Buffer.from(png));
}

/** Number of pixels within `tol` (per channel) of an RGB colour. */
function countColor(img: PNG, rgb: [number, number, number], tol = 6): number {
  let n = 0;
  for (let i = 0; i < img.data.length; i += 4) {
    if (Math.abs(img.data[i] - rgb[0]) <= tol && Math.abs(img.data[i + 1] - rgb[1]) <= tol && Math.abs(img.data[i + 2] - rgb[2]) <= tol) {
      n++;
    }
  }
  return n;
}

function expectDataError(fn: () => unknown, pattern: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(NormLabError);
  expect((caught as NormLabError).code).toBe('data');
  expect((caught as NormLabError).message).toMatch(pattern);
  expect((caught as NormLabError).message).not.toContain('\n');
}

async function expectDataReject(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await expect(p).rejects.toBeInstanceOf(NormLabError);
  await expect(p).rejects.toMatchObject({ code: 'data', message: expect.stringMatching(pattern) });
}

const steps = Array.from({ length: 200 }, (_, i) => i);
const lineOpts = {
  title: 'Training loss',
  xLabel: 'step',
  yLabel: 'loss',
  series: [
    { name: 'Pre-LN', x: steps, y: steps.map((s) => 4 + 3 * Math.exp(-s / 40)) },
    { name: 'LN-free', x: steps, y: steps.map((s) => 4.2 + 3 * Math.exp(-s / 50)) },
  ],
  marks: [{ x: 100, label: 'remove ln_1' }],
};

describe('linePlot', () => {
  it('renders a PNG of the requested size with title and legend in the SVG', async () => {
    const png = await linePlot(lineOpts);
    expect(pngSize(png)).toEqual({ width: 640, height: 400 });
    const svg = await linePlotSvg(lineOpts);
    expect(svg).toContain('Training loss');
    expect(svg).toContain('Pre-LN');
    expect(svg).toContain('LN-free');
    expect(svg).toContain('remove ln_1');
    expect(svg).toContain('step');
  });

  it('honours width, height and scale', async () => {
    expect(pngSize(await linePlot({ ...lineOpts, width: 500, height: 300 }))).toEqual({ width: 500, height: 300 });
    expect(pngSize(await linePlot({ ...lineOpts, width: 400, height: 250, scale: 2 }))).toEqual({
      width: 800,
      height: 500,
    });
  });

  it('has a white background', async () => {
    const img = decode(await linePlot(lineOpts));
    expect(Array.from(img.data.subarray(0, 4))).toEqual([255, 255, 255, 255]);
  });

  it('drops NaN and Infinity without crashing', async () => {
    const y = lineOpts.series[0].y.map((v, i) => (i % 7 === 0 ? NaN : i % 11 === 0 ? Infinity : v));
    const png = await linePlot({ ...lineOpts, series: [{ name: 'noisy', x: steps, y }] });
    expect(pngSize(png).width).toBe(640);
    const svg = await linePlotSvg({ ...lineOpts, series: [{ name: 'noisy', x: steps, y }] });
    expect(svg).not.toMatch(/NaN|Infinity/);
  });

  it('drops non-positive values on a log scale and fails when none is left', async () => {
    const y = steps.map((s) => (s < 50 ? -1 : s === 60 ? 0 : 1 / (s + 1)));
    const png = await linePlot({ ...lineOpts, logY: true, series: [{ name: 'decay', x: steps, y }] });
    expect(pngSize(png)).toEqual({ width: 640, height: 400 });
    await expectDataReject(linePlot({ ...lineOpts, logY: true, series: [{ name: 'neg', x: [0, 1, 2], y: [0, -1, -2] }] }), /positive values for a log scale/);
  });

  it('fails with a one-line data error on empty input', async () => {
    await expectDataReject(linePlot({ ...lineOpts, series: [] }), /no series/);
    await expectDataReject(linePlot({ ...lineOpts, series: [{ name: 'e', x: [], y: [] }] }), /"e" is empty/);
    await expectDataReject(linePlot({ ...lineOpts, series: [{ name: 'm', x: [1, 2], y: [1] }] }), /2 x values but 1/);
    await expectDataReject(linePlot({ ...lineOpts, series: [{ name: 'n', x: [1], y: [NaN] }] }), /finite values/);
  });

  it('thins very long series and stays fast', async () => {
    const n = 100_000;
    const x = Array.from({ length: n }, (_, i) => i);
    const y = x.map((i) => 5 * Math.exp(-i / 20000) + (i === 54321 ? 3 : 0));
    const t0 = Date.now();
    const svg = await linePlotSvg({ ...lineOpts, series: [{ name: 'long', x, y }] });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(svg.length).toBeLessThan(400_000);
  });
});

describe('barPlot', () => {
  const opts = {
    title: 'Loss increase per pruned layer',
    xLabel: 'layer',
    yLabel: 'Δ loss',
    groups: ['Pre-LN', 'Peri-LN'].map((name, k) => ({
      name,
      values: [0, 1, 2, 3].map((l) => ({ label: `L${l}`, value: l === 2 && k === 1 ? NaN : 0.2 * l + k - 0.3 })),
    })),
  };

  it('renders grouped bars with a legend', async () => {
    expect(pngSize(await barPlot(opts))).toEqual({ width: 640, height: 400 });
    const svg = await barPlotSvg(opts);
    for (const s of ['Loss increase per pruned layer', 'Pre-LN', 'Peri-LN', 'L3', 'Δ loss']) expect(svg).toContain(s);
  });

  it('fails on empty groups', async () => {
    await expectDataReject(barPlot({ ...opts, groups: [] }), /no groups/);
    await expectDataReject(barPlot({ ...opts, groups: [{ name: 'x', values: [] }] }), /"x" is empty/);
  });
});

describe('heatmap', () => {
  it('shows the minimum and maximum in different colours (viridis ends)', async () => {
    const opts = {
      title: 'Angular distance',
      xLabel: 'layer l',
      yLabel: 'block size n',
      x: [0, 1],
      y: [1, 2],
      values: [
        [0, 1],
        [0.5, NaN],
      ],
      colorLabel: 'd(l, n)',
    };
    const img = decode(await heatmap(opts));
    expect({ width: img.width, height: img.height }).toEqual({ width: 640, height: 400 });
    // Each cell is ~250 × 170 px; the colour bar holds only a few pixels of each end colour.
    const low = countColor(img, [0x44, 0x01, 0x54]); // viridis 0
    const high = countColor(img, [0xfd, 0xe7, 0x25]); // viridis 1
    expect(low).toBeGreaterThan(10_000);
    expect(high).toBeGreaterThan(10_000);
    // The two extremes sit in different places: left column is the minimum, right column the maximum.
    const at = (x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 4, (y * img.width + x) * 4 + 3));
    let minPixel: number[] | undefined;
    let maxPixel: number[] | undefined;
    for (let x = 0; x < img.width && !(minPixel && maxPixel); x++) {
      const p = at(x, 100);
      if (!minPixel && Math.abs(p[0] - 0x44) <= 6 && Math.abs(p[1] - 0x01) <= 6 && Math.abs(p[2] - 0x54) <= 6) minPixel = [x];
      if (!maxPixel && Math.abs(p[0] - 0xfd) <= 6 && Math.abs(p[1] - 0xe7) <= 6 && Math.abs(p[2] - 0x25) <= 6) maxPixel = [x];
    }
    expect(minPixel).toBeDefined();
    expect(maxPixel).toBeDefined();
    expect(minPixel![0]).toBeLessThan(maxPixel![0]);
    const svg = await heatmapSvg(opts);
    expect(svg).toContain('Angular distance');
    expect(svg).toContain('d(l, n)');
  });

  it('leaves NaN cells empty (white) and fails when every cell is NaN', async () => {
    const img = decode(await heatmap({ title: 't', xLabel: 'x', yLabel: 'y', x: ['a', 'b'], y: ['r'], values: [[1, NaN]], colorLabel: 'c' }));
    expect(countColor(img, [255, 255, 255], 0)).toBeGreaterThan(img.width * img.height * 0.3);
    await expectDataReject(heatmap({ title: 't', xLabel: 'x', yLabel: 'y', x: [1], y: [1], values: [[NaN]], colorLabel: 'c' }), /every value is NaN/);
    await expectDataReject(
      heatmap({ title: 't', xLabel: 'x', yLabel: 'y', x: [1, 2], y: [1], values: [[1]], colorLabel: 'c' }),
      /row 0 has 1 entries, expected 2/,
    );
  });
});

describe('histogramWithLevels', () => {
  const values = new Float32Array(50_000);
  for (let i = 0; i < values.length; i++) values[i] = Math.exp(-10 * ((i * 0.618034) % 1));
  values[3] = NaN;
  values[4] = Infinity;
  const opts = {
    title: 'Post-softmax values',
    values,
    bins: 50,
    levels: [
      { name: 'uniform 3-bit', points: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => i / 7) },
      { name: 'log2 3-bit', points: [0, 1 / 64, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1] },
    ],
  };

  it('bins the values', () => {
    const h = histogram([0, 0.1, 0.5, 1, 2, NaN], 2, 0, 1);
    expect(h.counts).toEqual([2, 2]);
    expect(h.skipped).toBe(2);
  });

  it('renders linear and log counts with a legend per quantizer in distinct colours', async () => {
    for (const logY of [false, true]) {
      const png = await histogramWithLevels({ ...opts, logY });
      expect(pngSize(png)).toEqual({ width: 640, height: 400 });
      const img = decode(png);
      expect(countColor(img, [0x00, 0x72, 0xb2], 10)).toBeGreaterThan(20); // first quantizer
      expect(countColor(img, [0xd5, 0x5e, 0x00], 10)).toBeGreaterThan(20); // second quantizer
    }
    const svg = await histogramWithLevelsSvg(opts);
    for (const s of ['Post-softmax values', 'uniform 3-bit', 'log2 3-bit']) expect(svg).toContain(s);
  });

  it('fails on empty or all-NaN values', async () => {
    await expectDataReject(histogramWithLevels({ ...opts, values: [] }), /values is empty/);
    await expectDataReject(histogramWithLevels({ ...opts, values: [NaN, Infinity] }), /no value is finite/);
    await expectDataReject(histogramWithLevels({ ...opts, bins: 0 }), /bins must be/);
  });
});

describe('scatterWithRules', () => {
  const x = Array.from({ length: 64 }, (_, i) => i);
  const y = x.map((i) => 0.5 + ((i * 37) % 11) / 10);
  const opts = {
    title: 'Per-channel scales',
    xLabel: 'channel',
    yLabel: 'scale',
    x,
    y,
    rules: [
      { y: 1.0, label: 'mean' },
      { y: 0.9, label: 'median' },
    ],
  };

  it('renders points and labelled rules', async () => {
    expect(pngSize(await scatterWithRules(opts))).toEqual({ width: 640, height: 400 });
    const svg = await scatterWithRulesSvg(opts);
    for (const s of ['Per-channel scales', 'mean = 1', 'median = 0.9', 'channel']) expect(svg).toContain(s);
  });

  it('drops non-positive values on a log scale and fails on empty input', async () => {
    const png = await scatterWithRules({ ...opts, logY: true, y: y.map((v, i) => (i < 5 ? -v : v)) });
    expect(pngSize(png).height).toBe(400);
    await expectDataReject(scatterWithRules({ ...opts, x: [], y: [] }), /no points/);
    await expectDataReject(scatterWithRules({ ...opts, logY: true, x: [1], y: [0] }), /positive y values/);
  });
});

describe('writePlot', () => {
  it('writes the PNG atomically and refuses non-PNG bytes for a .png path', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'normlab-plot-'));
    try {
      const file = path.join(dir, 'loss.png');
      const png = await linePlot(lineOpts);
      await writePlot(file, png);
      expect(new Uint8Array(fs.readFileSync(file))).toEqual(png);
      expect(fs.readdirSync(dir)).toEqual(['loss.png']);
      await expectDataReject(writePlot(path.join(dir, 'bad.png'), new Uint8Array([1, 2, 3])), /not a PNG/);
      await writePlot(path.join(dir, 'loss.svg'), await linePlotSvg(lineOpts));
      expect(fs.readFileSync(path.join(dir, 'loss.svg'), 'utf8')).toMatch(/^<svg/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('spec builders', () => {
  it('throw one-line data errors synchronously, before any rendering', () => {
    expectDataError(() => linePlotSpec({ ...lineOpts, series: [] }), /no series/);
    expectDataError(() => linePlotSpec({ ...lineOpts, width: 10 }), /width must be an integer/);
    expectDataError(
      () => barPlotSpec({ title: 't', xLabel: 'x', yLabel: 'y', groups: [{ name: 'g', values: [{ label: 'a', value: NaN }] }] }),
      /no group has a finite value/,
    );
  });
});
