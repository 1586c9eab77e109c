/**
 * Server-side plots: figures a researcher would put in a paper, as PNG (and SVG), from the
 * headless engine. Vega-Lite spec → vega (no canvas, no DOM) → SVG → resvg → PNG, with text in
 * DejaVu Sans so figures look the same on every machine.
 *
 *   const png = await linePlot({ title: 'Training loss', xLabel: 'step', yLabel: 'loss', series });
 *   await writePlot(join(run, 'artifacts', 'loss.png'), png);
 *
 * Every plot takes `width` (default 640), `height` (default 400) and `scale` (PNG pixel density,
 * default 1); the PNG is exactly width·scale × height·scale. NaN/±Infinity are dropped; empty
 * input is a one-line `NormLabError` with code 'data'. The figures of one run's page take the
 * page's ordered variant names as `variants`, so a variant has one colour in all of them.
 */
export { linePlot, linePlotSvg, linePlotSpec, type LinePlotOptions, type LineSeries } from './line.js';
export { barPlot, barPlotSvg, barPlotSpec, type BarPlotOptions, type BarGroup } from './bar.js';
export { heatmap, heatmapSvg, heatmapSpec, type HeatmapOptions } from './heatmap.js';
export {
  histogramWithLevels,
  histogramWithLevelsSvg,
  histogramSpec,
  histogram,
  type HistogramOptions,
  type QuantizerLevels,
  type Histogram,
} from './histogram.js';
export { scatterWithRules, scatterWithRulesSvg, scatterSpec, type ScatterOptions } from './scatter.js';
export { renderSpec, specToSvg, svgToPng, plotFontFiles, DEFAULT_WIDTH, DEFAULT_HEIGHT, PLOT_FONT, type PlotSize, type RenderedPlot } from './render.js';
export { writePlot, isPng } from './write.js';
