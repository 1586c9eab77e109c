/**
 * Synchronized x zoom between the uPlot charts of one page (hover is synchronized by uPlot's own
 * `cursor.sync`): zooming one chart (drag) sets the same x range on every chart of its group;
 * a double click resets them all.
 */
import type uPlot from 'uplot';

const groups = new Map<string, Set<uPlot>>();
let applying = false;

export function joinGroup(key: string, u: uPlot): () => void {
  let g = groups.get(key);
  if (!g) groups.set(key, (g = new Set()));
  g.add(u);
  return () => {
    g.delete(u);
    if (!g.size) groups.delete(key);
  };
}

/** Zoom every other chart of `key` to [min, max] on x (after a drag-select on one of them). */
export function zoomGroup(key: string, from: uPlot, min: number, max: number): void {
  if (applying) return;
  applying = true;
  try {
    for (const other of groups.get(key) ?? []) if (other !== from) other.setScale('x', { min, max });
  } finally {
    applying = false;
  }
}

/** Reset every other chart of `key` to its full x range (after a double click on one). */
export function resetGroup(key: string, from: uPlot): void {
  for (const other of groups.get(key) ?? []) if (other !== from) other.setData(other.data, true);
}
