/**
 * Model folders on disk (node only), Hugging Face style: `config.json` + `model.safetensors`
 * (or sharded `model.safetensors.index.json` + shards, as `save_pretrained` writes large models).
 * Saving writes the weights first and the config last, each atomically, so a folder with a
 * config always has complete weights next to it. Opening reads `config.json` first and the
 * weights only when asked, one tensor at a time (`openModelDir`); `loadModelDir` reads them all.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { fail } from '../core/errors.js';
import { readJson, writeJsonAtomic } from './atomic.js';
import { openSafetensors, writeSafetensors, type RawTensor, type SafetensorsFile } from './safetensors-file.js';
import type { HostTensor, SafetensorsDtype } from './safetensors.js';

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

/** One weight of a model folder: its dtype, shape, the file it is in and its size there. */
export interface WeightInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Path of the safetensors file holding it. */
  file: string;
  byteLength: number;
}

/** The weights of a model folder as listed by their safetensors headers (no tensor data read). */
export interface ModelWeights {
  /** Weight names: shard by shard (shards sorted by file name), each in the order of its data. */
  names: readonly string[];
  /** Bytes of tensor data of all the weights (what reading each once reads). */
  totalBytes: number;
  /** `__metadata__` of the safetensors file(s), merged. */
  metadata: Record<string, string>;
  /** Where weight `name` is (fails for a name the folder does not have). */
  info(name: string): WeightInfo;
}

export interface OpenModelDirOptions {
  /** Called while weights are read: bytes of tensor data read so far through this handle, and `totalBytes`. */
  onProgress?: (bytesRead: number, totalBytes: number) => void;
}

/**
 * A model folder whose `config.json` has been read; nothing else has. The caller can refuse the
 * config before any weight file is touched. The weights' headers are read (and validated) on the
 * first `weights()`, `read()` or `readRaw()`; each read reads one tensor.
 */
export interface ModelDirReader {
  readonly dir: string;
  readonly config: Record<string, unknown>;
  /** Open the weight file(s) and validate their headers (once; later calls share the result). */
  weights(): Promise<ModelWeights>;
  /** Read weight `name` as a `HostTensor` (F16/BF16 widened to float32). */
  read(name: string): Promise<HostTensor>;
  /** Read weight `name`'s bytes as stored (BF16 stays 2 bytes per value). */
  readRaw(name: string): Promise<RawTensor>;
  /** Close the weight files; later reads fail. Closing twice is fine. */
  close(): Promise<void>;
}

interface OpenWeights extends ModelWeights {
  files: SafetensorsFile[];
  /** The open file holding weight `name` (fails for a name the folder does not have). */
  fileOf(name: string): SafetensorsFile;
}

function parseIndex(index: unknown, indexPath: string): Map<string, string[]> {
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
  return byShard;
}

/**
 * Open the weights of `dir`: `model.safetensors`, or the shards `model.safetensors.index.json`
 * lists. The index is authoritative (as in transformers): a tensor a shard holds but the index
 * does not list is not a weight. Files opened before a failure are closed.
 */
async function openWeights(dir: string): Promise<OpenWeights> {
  const files: SafetensorsFile[] = [];
  const byName = new Map<string, SafetensorsFile>();
  try {
    const weightsPath = path.join(dir, WEIGHTS_FILE);
    const indexPath = path.join(dir, WEIGHTS_INDEX_FILE);
    if (exists(weightsPath)) {
      const st = await openSafetensors(weightsPath);
      files.push(st);
      for (const name of st.names) byName.set(name, st);
    } else if (exists(indexPath)) {
      const byShard = parseIndex(await readJson(indexPath, WEIGHTS_INDEX_FILE), indexPath);
      for (const [shard, listed] of [...byShard.entries()].sort(([a], [b]) => a.localeCompare(b))) {
        const shardPath = path.join(dir, shard);
        if (!exists(shardPath)) fail('io', `${indexPath} lists shard ${shard}, which is missing from ${dir}`);
        const st = await openSafetensors(shardPath);
        files.push(st);
        for (const name of listed) {
          if (!st.has(name)) fail('io', `${indexPath} says "${name}" is in ${shard}, but that file has no such tensor`);
        }
        const wanted = new Set(listed);
        for (const name of st.names) if (wanted.has(name)) byName.set(name, st);
      }
    } else {
      noWeights(dir);
    }
  } catch (err) {
    await Promise.all(files.map((f) => f.close().catch(() => undefined)));
    throw err;
  }
  const metadata: Record<string, string> = {};
  for (const f of files) Object.assign(metadata, f.metadata);
  let totalBytes = 0;
  for (const [name, f] of byName) totalBytes += f.info(name).byteLength;
  const fileOf = (name: string): SafetensorsFile => {
    const f = byName.get(name);
    if (!f) fail('io', `model folder ${dir} has no weight "${name}"`);
    return f;
  };
  return {
    names: [...byName.keys()],
    totalBytes,
    metadata,
    files,
    fileOf,
    info(name) {
      const f = fileOf(name);
      const { dtype, shape, byteLength } = f.info(name);
      return { dtype, shape, file: f.file, byteLength };
    },
  };
}

function noWeights(dir: string): never {
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

/**
 * Open a model folder: check it and read `config.json` (which must hold a JSON object), and
 * nothing else. Errors say what is missing: the folder or `config.json`; weight errors (missing,
 * truncated, inconsistent index, with a hint when only a PyTorch pickle is present) come from
 * `weights()` and the reads.
 */
export async function openModelDir(dir: string, opts: OpenModelDirOptions = {}): Promise<ModelDirReader> {
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

  let opening: Promise<OpenWeights> | undefined;
  let closed = false;
  let bytesRead = 0;
  const open = async (): Promise<OpenWeights> => {
    if (closed) fail('state', `model folder ${dir} is closed`);
    opening ??= openWeights(dir);
    return opening;
  };
  const readOpts = (w: OpenWeights) => ({
    onRead: (bytes: number) => {
      bytesRead += bytes;
      opts.onProgress?.(bytesRead, w.totalBytes);
    },
  });
  return {
    dir,
    config: config as Record<string, unknown>,
    weights: open,
    async read(name) {
      const w = await open();
      return w.fileOf(name).readTensor(name, readOpts(w));
    },
    async readRaw(name) {
      const w = await open();
      return w.fileOf(name).readTensorRaw(name, readOpts(w));
    },
    async close() {
      closed = true;
      const w = await opening?.catch(() => undefined);
      await Promise.all((w?.files ?? []).map((f) => f.close()));
    },
  };
}

/**
 * Load a model folder whole: config and every weight (read one at a time). Errors as
 * `openModelDir` and `ModelDirReader.weights()`.
 */
export async function loadModelDir(dir: string, opts: OpenModelDirOptions = {}): Promise<ModelDir> {
  const model = await openModelDir(dir, opts);
  try {
    const w = await model.weights();
    const tensors = new Map<string, HostTensor>();
    for (const name of w.names) tensors.set(name, await model.read(name));
    return { config: model.config, tensors, metadata: w.metadata };
  } finally {
    await model.close();
  }
}
