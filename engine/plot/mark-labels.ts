/**
 * Rows for the labels beside vertical rules (a line plot's `marks`): each label takes the first
 * of a few rows at the top of the plot where it clears the labels before it, measured in DejaVu
 * Sans; a label that fits no row is left out (its rule is still drawn).
 */
import { textWidth } from './textmetrics.js';

/** Label font size and the rows' offsets from the top of the plot, in px. */
export const MARK_LABEL_SIZE = 10;
const ROW_DY = [4, 17, 30];
/** The label's offset right of its rule, and the space kept before the next label in its row. */
const DX = 3;
const GAP = 4;

/**
 * `marks` with a row offset (`dy`) for each label that fits; `pxOf` maps an x value to px from the
 * plot's left edge (underestimating distances only costs rows, never an overlap).
 */
export function markLabelRows(marks: { x: number; label: string }[], pxOf: (x: number) => number): { x: number; label: string; dy: number }[] {
  const ends = ROW_DY.map(() => -Infinity);
  const placed: { x: number; label: string; dy: number }[] = [];
  for (const m of [...marks].sort((a, b) => a.x - b.x)) {
    const left = pxOf(m.x) + DX;
    const row = ends.findIndex((end) => end + GAP <= left);
    if (row < 0) continue;
    ends[row] = left + textWidth(m.label, MARK_LABEL_SIZE);
    placed.push({ ...m, dy: ROW_DY[row] });
  }
  return placed;
}
