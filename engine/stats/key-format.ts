/**
 * Key results as text for a terminal (`normlab list/show/demo`). No imports, so that the CLI can load it without the statistics
 * libraries.
 */
type Interval = [number, number];

/**
 * Whether a key result is a fraction (shown in percent): its `unit` says so; a summary written before key results carried a unit
 * is read as one when its label names an accuracy (top-1, accuracy), the only fractions key results held then.
 */
function keyResultIsFraction(kr: { label: string; unit?: unknown }): boolean {
  if (kr.unit !== undefined) return kr.unit === 'fraction';
  return /\btop-1\b|\baccuracy\b/i.test(kr.label);
}

/**
 * A key result's value (and interval) as a terminal shows it: a fraction in percent (a difference of fractions in percentage
 * points), as the tables beside it; other values with `digits` decimals.
 */
export function keyResultValue(
  kr: { label: string; value: number; ci95?: Interval; unit?: unknown; verdict?: unknown; better?: unknown },
  digits = 4,
): { value: string; ci95: string | null } {
  const frac = keyResultIsFraction(kr);
  const k = frac ? 100 : 1;
  const d = frac ? 2 : digits;
  const f = (x: number) => (Number.isFinite(x) ? (x * k).toFixed(d) : String(x));
  const signed = frac && (kr.verdict !== undefined || kr.better !== undefined);
  const unit = frac ? (signed ? ' pp' : '%') : '';
  return { value: `${signed && kr.value > 0 ? '+' : ''}${f(kr.value)}${unit}`, ci95: kr.ci95 ? `[${f(kr.ci95[0])}${unit}, ${f(kr.ci95[1])}${unit}]` : null };
}
