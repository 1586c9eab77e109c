/**
 * Text widths for laying out plots without a canvas. Vega measures text with a canvas when it has
 * one and otherwise guesses 0.8 em per character, which leaves wide gaps beside legends and axis
 * labels. With no canvas in the engine, this installs DejaVu Sans's own advance widths (read from
 * DejaVuSans.ttf and DejaVuSans-Bold.ttf, in 1/1000 em) as vega's text measure — the hook vega
 * offers for this (`textMetrics.width`, as vl-convert uses) — so the layout fits the text resvg
 * draws. Characters outside the table count 0.62 em (0.68 em bold).
 */
import * as vega from 'vega';

// prettier-ignore
const REGULAR_ASCII = [318, 401, 460, 838, 636, 950, 780, 275, 390, 390, 500, 838, 318, 361, 318, 337, 636, 636, 636, 636, 636, 636, 636, 636, 636, 636, 337, 337, 838, 838, 838, 531, 1000, 684, 686, 698, 770, 632, 575, 775, 752, 295, 295, 656, 557, 863, 748, 787, 603, 787, 695, 635, 611, 732, 684, 989, 685, 611, 685, 390, 337, 390, 838, 500, 500, 613, 635, 550, 635, 615, 352, 635, 634, 278, 278, 579, 278, 974, 634, 612, 635, 635, 411, 521, 392, 634, 592, 818, 592, 592, 525, 636, 337, 636, 838];
const REGULAR_EXTRA: Record<string, number> = {
  α: 659,
  β: 638,
  γ: 592,
  δ: 612,
  ε: 541,
  θ: 612,
  λ: 592,
  μ: 636,
  ν: 559,
  π: 602,
  ρ: 635,
  σ: 634,
  τ: 602,
  φ: 660,
  χ: 578,
  ψ: 660,
  ω: 837,
  Δ: 684,
  Σ: 632,
  Ω: 764,
  '×': 838,
  '·': 318,
  '−': 838,
  '–': 500,
  '—': 1000,
  '±': 838,
  '≤': 838,
  '≥': 838,
  '≈': 838,
  '∞': 833,
  '°': 500,
  '²': 401,
  '³': 401,
  '⁻': 528,
  '¹': 401,
  '√': 637,
  '…': 1000,
  ℓ: 413,
};
const BOLD_ASCII = [
  348, 456, 521, 838, 696, 1002, 872, 306, 457, 457, 523, 838, 380, 415, 380, 365, 696, 696, 696, 696, 696, 696, 696, 696, 696, 696, 400, 400, 838, 838, 838,
  580, 1000, 774, 762, 734, 830, 683, 683, 821, 837, 372, 372, 775, 637, 995, 837, 850, 733, 850, 770, 720, 682, 812, 774, 1103, 771, 724, 725, 457, 365, 457,
  838, 500, 500, 675, 716, 593, 716, 678, 435, 716, 712, 343, 343, 665, 343, 1042, 712, 687, 716, 716, 493, 595, 478, 712, 652, 924, 645, 652, 582, 712, 365,
  712, 838,
];
const BOLD_EXTRA: Record<string, number> = {
  α: 687,
  β: 716,
  γ: 681,
  δ: 687,
  ε: 557,
  θ: 687,
  λ: 633,
  μ: 736,
  ν: 681,
  π: 791,
  ρ: 716,
  σ: 779,
  τ: 638,
  φ: 782,
  χ: 645,
  ψ: 794,
  ω: 869,
  Δ: 774,
  Σ: 683,
  Ω: 850,
  '×': 838,
  '·': 380,
  '−': 838,
  '–': 500,
  '—': 1000,
  '±': 838,
  '≤': 838,
  '≥': 838,
  '≈': 838,
  '∞': 833,
  '°': 500,
  '²': 438,
  '³': 438,
  '⁻': 528,
  '¹': 438,
  '√': 667,
  '…': 1000,
  ℓ: 472,
};

interface TextItem {
  fontSize?: number | string;
  fontWeight?: number | string;
  text?: unknown;
}

function charWidth(ch: string, bold: boolean): number {
  const code = ch.codePointAt(0) ?? 32;
  if (code >= 32 && code < 127) return (bold ? BOLD_ASCII : REGULAR_ASCII)[code - 32];
  const extra = (bold ? BOLD_EXTRA : REGULAR_EXTRA)[ch];
  if (extra !== undefined) return extra;
  return bold ? 680 : 620;
}

/** Width in pixels of `text` in DejaVu Sans at `fontSize` px. */
export function textWidth(text: string, fontSize: number, bold = false): number {
  let units = 0;
  for (const ch of text) units += charWidth(ch, bold);
  return (units * fontSize) / 1000;
}

function isBold(weight: number | string | undefined): boolean {
  if (weight === undefined) return false;
  if (typeof weight === 'number') return weight >= 600;
  return weight === 'bold' || weight === 'bolder' || Number(weight) >= 600;
}

let installed = false;

/** Make vega measure text with DejaVu Sans widths (once per process). */
export function installTextMetrics(): void {
  if (installed) return;
  installed = true;
  const metrics = (vega as unknown as { textMetrics: { width: (item: TextItem, text?: unknown) => number } }).textMetrics;
  metrics.width = (item: TextItem, text?: unknown) => {
    const size = item.fontSize != null ? Number(item.fontSize) || 0 : 11;
    const line = text == null ? '' : String(text).trim();
    return size <= 0 || line === '' ? 0 : textWidth(line, size, isBold(item.fontWeight));
  };
}
