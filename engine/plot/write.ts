/** Writing a figure into a run's artifacts/ folder, atomically (engine/io/atomic.ts). */
import { fail } from '../core/errors.js';
import { writeFileAtomic } from '../io/atomic.js';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** True when `bytes` start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length > 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

/**
 * Write a figure to `path` atomically (temp file in the same folder, fsync, rename): PNG bytes
 * from `linePlot` & co., or SVG text from `linePlotSvg` & co. A `.png` path must get PNG bytes.
 */
export async function writePlot(path: string, image: Uint8Array | string): Promise<void> {
  if (typeof image !== 'string' && path.toLowerCase().endsWith('.png') && !isPng(image)) {
    fail('data', `cannot write ${path}: the bytes are not a PNG image`);
  }
  if (typeof image === 'string' && path.toLowerCase().endsWith('.png')) {
    fail('data', `cannot write ${path}: got SVG text, expected PNG bytes`);
  }
  await writeFileAtomic(path, image);
}
