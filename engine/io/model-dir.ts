/**
 * Model folders on disk (node only), Hugging Face style: `config.json` + `model.safetensors`
 * (or sharded `model.safetensors.index.json` + shards, as `save_pretrained` writes large models).
 * Saving writes the weights first and the config last, each atomically, so a folder with a
 * config always has complete weights next to it.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fail } from '../core/errors.js';
import { readJson, writeJsonAtomic } from './atomic.js';
import { readSafetensors, writeSafetensors } from './safetensors-file.js';
import type { HostTensor } from './safetensors.js';

export const CONFIG_FILE = 'config.json';
export const WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

export interface ModelDir {
  config: Record<string, unknown>;
  tensors: Map<string, HostTensor>;
  /** `__metadata__` of the safetensors file(s), merged. */
  metadata: Record<string, string>;
}

/** Create `dir` if needed and write `model.safetensors` then `config.json`, both atomically. */
export async function saveModelDir(
  dir: string,
  config: Record<string, unknown>,
  tensors: Record<string, HostTensor> | Map<string, HostTensor>,
  metadata: Record<string, string> = { format: 'pt' },
): Promise<void> {
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (err) {
    const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
    fail('io', `cannot create model folder ${dir}: ${msg}`);
  }
  await writeSafetensors(path.join(dir, WEIGHTS_FILE), tensors, metadata);
  await writeJsonAtomic(path.join(dir, CONFIG_FILE), config);
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

async function loadSharded(dir: string, indexPath: string): Promise<{ tensors: Map<string, HostTensor>; metadata: Record<string, string> }> {
  const index = await readJson(indexPath, WEIGHTS_INDEX_FILE);
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    fail('io', `${indexPath} has no "weight_map" object`);
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      fail('io', `${indexPath}: weight_map entry "${name}" names an invalid shard file ${JSON.stringify(shard)}`);
    }
    const list = byShard.get(shard) ?? [];
    list.push(name);
    byShard.set(shard, list);
  }
  const tensors = new Map<string, HostTensor>();
  const metadata: Record<string, string> = {};
  for (const [shard, names] of [...byShard.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    const shardPath = path.join(dir, shard);
    if (!exists(shardPath)) fail('io', `${indexPath} lists shard ${shard}, which is missing from ${dir}`);
    const parsed = await readSafetensors(shardPath);
    Object.assign(metadata, parsed.metadata);
    for (const name of names) {
      const t = parsed.tensors.get(name);
      if (!t) fail('io', `${indexPath} says "${name}" is in ${shard}, but that file has no such tensor`);
      tensors.set(name, t);
    }
  }
  return { tensors, metadata };
}

/**
 * Load a model folder. Errors say what is missing: the folder, `config.json` (or it is not a
 * JSON object), or the weights (with a hint when only a PyTorch pickle is present).
 */
export async function loadModelDir(dir: string): Promise<ModelDir> {
  let stat: fs.Stats;
  try {
    stat = await fsp.stat(dir);
  } catch {
    fail('io', `model folder not found: ${dir}`);
  }
  if (!stat.isDirectory()) {
    fail('io', `${dir} is a file; a model is a folder holding config.json and model.safetensors`);
  }
  const configPath = path.join(dir, CONFIG_FILE);
  if (!exists(configPath)) fail('io', `model folder ${dir} has no config.json`);
  const config = await readJson(configPath, CONFIG_FILE);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    fail('io', `${configPath} must hold a JSON object`);
  }

  const weightsPath = path.join(dir, WEIGHTS_FILE);
  const indexPath = path.join(dir, WEIGHTS_INDEX_FILE);
  if (exists(weightsPath)) {
    const parsed = await readSafetensors(weightsPath);
    return { config: config as Record<string, unknown>, tensors: parsed.tensors, metadata: parsed.metadata };
  }
  if (exists(indexPath)) {
    const parsed = await loadSharded(dir, indexPath);
    return { config: config as Record<string, unknown>, ...parsed };
  }
  const pickles = ['pytorch_model.bin', 'model.bin', 'pytorch_model.bin.index.json', 'model.pt', 'model.pth'].filter((f) => exists(path.join(dir, f)));
  if (pickles.length > 0) {
    fail(
      'io',
      `model folder ${dir} has ${pickles[0]} but no model.safetensors: only safetensors is supported; convert it in Python with ` +
        `transformers (AutoModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)) or ` +
        `safetensors.torch.save_file(torch.load(path), "model.safetensors")`,
    );
  }
  fail('io', `model folder ${dir} has no model.safetensors`);
}
