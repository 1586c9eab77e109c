/**
 * Safetensors files on disk (node only): read a file into tensors, write tensors atomically.
 * The format itself lives in the node-free `safetensors.ts`.
 */
import * as fsp from 'node:fs/promises';
import { fail } from '../core/errors.js';
import { writeFileAtomic } from './atomic.js';
import { parseSafetensors, serializeSafetensors, type HostTensor, type ParsedSafetensors } from './safetensors.js';

/** Read and validate a safetensors file; errors name `file`. */
export async function readSafetensors(file: string): Promise<ParsedSafetensors> {
  let bytes: Uint8Array;
  try {
    bytes = await fsp.readFile(file);
  } catch (err) {
    const code = typeof err === 'object' && err !== null && 'code' in err ? String(err.code) : '';
    if (code === 'ENOENT') fail('io', `${file} not found`);
    if (code === 'EISDIR') fail('io', `${file} is a folder, expected a .safetensors file`);
    if (code === 'ERR_FS_FILE_TOO_LARGE') fail('io', `${file} is larger than 2 GiB, which is not supported`);
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    fail('io', `cannot read ${file}: ${msg}`);
  }
  return parseSafetensors(bytes, file);
}

/** Serialize `tensors` (+ optional string metadata) and write them to `file` atomically. */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, HostTensor> | Map<string, HostTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(file, serializeSafetensors(tensors, metadata));
}
