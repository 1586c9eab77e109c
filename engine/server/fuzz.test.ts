/**
 * The standing fuzz suite: generated and mutated inputs against a live `normlab serve` (a child
 * process, so a crash is a process exit) and against the readers of job configs, config.json
 * files and safetensors headers. Every input must be answered with one clear line (a NormLabError
 * code and a one-line message) or a normal result; the server must keep serving; no process may
 * exit and nothing may print a stack trace. The counts are printed at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { initBackend } from '../backend/backend.js';
import { NormLabError } from '../core/errors.js';
import { parseSafetensors, serializeSafetensors } from '../io/safetensors.js';
import '../jobs/all.js';
import { readConfigFile, resolveConfig } from '../jobs/config.js';
import { jobKinds } from '../jobs/registry.js';
import { createLM } from '../models/index.js';
import { ViT, vitConfigFromJson } from '../models/vit.js';
import { requestSchemas } from '../protocol/protocol.js';
import { Project } from '../store/runs.js';
import { tempDir } from '../testing/helpers.js';

const BIN = path.resolve(__dirname, '../../bin/normlab.js');
const EXAMPLES = path.resolve(__dirname, '../../assets/examples');
const TOKEN = 'f'.repeat(32);
const SECRET = 'TOP-SECRET-CONTENT-7f3a';
const ERROR_CODES = ['config', 'io', 'data', 'model', 'shape', 'backend', 'protocol', 'not-found', 'access', 'state', 'cancelled', 'internal'];
/** A stack trace line as Node prints one: `    at fn (file.js:1:2)`. */
const STACK_LINE = /^\s+at .+:\d+:\d+\)?$/m;

const counts = { protocol: 0, http: 0, jobConfigs: 0, configJson: 0, safetensors: 0, processesExited: 0, stackTraces: 0 };

let server: ChildProcess;
let port = 0;
let output = '';
let runId = '';
let tmp = '';

beforeAll(async () => {
  tmp = tempDir('fuzz');
  fs.writeFileSync(path.join(tmp, 'secret.txt'), SECRET);
  fs.mkdirSync(path.join(tmp, 'outside'));
  fs.writeFileSync(path.join(tmp, 'outside', 'plot.png'), SECRET);
  // A finished run whose artifacts/ holds a real file and symlinks that point out of the project.
  const project = Project.open(path.join(tmp, 'project'));
  const run = project.createRun('lm-pretrain', { method: 'lm-pretrain' }, { seed: 0 });
  run.markFinished('completed');
  runId = run.id;
  fs.writeFileSync(path.join(run.artifactsDir, 'table.csv'), 'a,b\n1,2\n');
  fs.symlinkSync(path.join(tmp, 'secret.txt'), path.join(run.artifactsDir, 'leak.csv'));
  fs.symlinkSync(path.join(tmp, 'outside'), path.join(run.artifactsDir, 'out'));
  fs.symlinkSync(path.join(tmp, 'outside', 'plot.png'), path.join(run.artifactsDir, 'plot.png'));
  // `--backend tensorflow` cannot load here, so a fuzzed config that happens to be valid fails fast
  // at backend start instead of training.
  server = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--token', TOKEN, '--json', '--project', project.dir, '--backend', 'tensorflow'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout!.on('data', (d) => (output += String(d)));
  server.stderr!.on('data', (d) => (output += String(d)));
  server.on('exit', () => (counts.processesExited += 1));
  port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`normlab serve did not start: ${output}`)), 30_000);
    const check = () => {
      const m = /"port":(\d+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      } else setTimeout(check, 50);
    };
    check();
  });
}, 40_000);

afterAll(() => {
  counts.stackTraces += STACK_LINE.test(output) ? output.split('\n').filter((l) => STACK_LINE.test(l)).length : 0;
  const exitedBefore = counts.processesExited;
  server?.kill();
  process.stdout.write(
    `fuzz: ${counts.protocol} protocol messages, ${counts.http} HTTP paths, ${counts.jobConfigs} job configs, ${counts.configJson} config.json files, ` +
      `${counts.safetensors} safetensors headers; processes exited: ${exitedBefore}; stack traces printed: ${counts.stackTraces}\n`,
  );
  expect(exitedBefore).toBe(0);
  expect(counts.stackTraces).toBe(0);
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A WebSocket to the server whose responses are read one at a time (events are skipped). */
async function connect(): Promise<{ ws: WebSocket; next: () => Promise<Record<string, unknown> | 'closed'> }> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws?token=${TOKEN}`);
  const queue: (Record<string, unknown> | 'closed')[] = [];
  const waiting: ((m: Record<string, unknown> | 'closed') => void)[] = [];
  const push = (m: Record<string, unknown> | 'closed') => (waiting.length ? waiting.shift()!(m) : queue.push(m));
  ws.on('message', (d) => {
    const m = JSON.parse(String(d)) as Record<string, unknown>;
    if (m.kind === 'response') push(m);
  });
  ws.on('close', () => push('closed'));
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = () => (queue.length ? Promise.resolve(queue.shift()!) : new Promise<Record<string, unknown> | 'closed'>((r) => waiting.push(r)));
  return { ws, next };
}

/** One clear answer: a result, or an error with a known code and a one-line message. */
function expectClearAnswer(r: Record<string, unknown> | 'closed', input: unknown): void {
  expect(r, JSON.stringify(input)?.slice(0, 200)).not.toBe('closed');
  const res = r as { ok: boolean; error?: { code: string; message: string } };
  if (res.ok) return;
  expect(ERROR_CODES, JSON.stringify(input)?.slice(0, 200)).toContain(res.error?.code);
  expect(res.error!.message.length).toBeGreaterThan(0);
  expect(res.error!.message).not.toContain('\n');
  expect(res.error!.message).not.toContain(SECRET);
}

const objectKeys = ['toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__', 'prototype'];
const requestTypes = Object.keys(requestSchemas);
const nasty = fc.constantFrom(
  '../../etc/passwd',
  '/etc/passwd',
  '..',
  '',
  ' ',
  '%00',
  '\u0000',
  'a'.repeat(300),
  '☃',
  '\ud800',
  '__proto__',
  -1,
  1e308,
  -0,
  2 ** 53,
  0.5,
  null,
  true,
  [],
  {},
);
const value = fc.oneof({ weight: 3, arbitrary: nasty }, { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) });

/** Requests built from the protocol's own types, with fields replaced by nasty or random values. */
const mutatedRequest = fc.record({
  kind: fc.oneof({ weight: 6, arbitrary: fc.constant('request') }, { weight: 1, arbitrary: value }),
  id: fc.oneof({ weight: 6, arbitrary: fc.nat() }, { weight: 1, arbitrary: value }),
  type: fc.oneof(fc.constantFrom(...requestTypes), fc.constantFrom(...objectKeys), fc.string()),
  params: fc.oneof(
    fc.constant({}),
    fc.dictionary(fc.constantFrom('runId', 'since', 'name', 'tags', 'config', 'dir', '__proto__', 'constructor'), value, { maxKeys: 3 }),
    fc.record({ runId: fc.oneof(fc.constant('RUN'), value), name: fc.oneof(fc.constantFrom('table.csv', 'leak.csv', 'plot.png', 'out'), value) }),
    value,
  ),
});

describe('fuzzing normlab serve', () => {
  it('answers 1,000+ random and mutated protocol messages one by one, over one live WebSocket', async () => {
    const { ws, next } = await connect();
    const messages = [...fc.sample(mutatedRequest, { numRuns: 900, seed: 13 }), ...fc.sample(fc.jsonValue({ maxDepth: 4 }), { numRuns: 150, seed: 14 })].map(
      (m) => (m && typeof m === 'object' && 'params' in m ? JSON.parse(JSON.stringify(m).replaceAll('"RUN"', JSON.stringify(runId))) : m),
    );
    for (const m of messages) {
      // run.start with a config the fuzzer made valid would start work; validation is the same code.
      const send = m && typeof m === 'object' && (m as { type?: unknown }).type === 'run.start' ? { ...m, type: 'config.validate' } : m;
      ws.send(JSON.stringify(send) ?? 'null');
      expectClearAnswer(await next(), send);
      counts.protocol += 1;
    }
    for (const text of ['{', '', 'null', '[]', '"x"', '{"kind":"request","id":1e400}', '\u0000']) {
      ws.send(text);
      expectClearAnswer(await next(), text);
      counts.protocol += 1;
    }
    ws.send(JSON.stringify({ kind: 'request', id: 1, type: 'hello' }));
    expect(await next()).toMatchObject({ id: 1, ok: true });
    ws.close();
  }, 60_000);

  it('closes a socket on an oversized or non-UTF-8 frame and keeps serving', async () => {
    const frames = [
      Buffer.alloc(4 * 1024 * 1024 + 10, 0x61),
      ...fc.sample(fc.uint8Array({ minLength: 1, maxLength: 64 }), { numRuns: 20, seed: 15 }).map((b) => Buffer.from([0xff, ...b])),
    ];
    for (const frame of frames) {
      const { ws, next } = await connect();
      ws.send(frame, { binary: false });
      const r = await next();
      if (r !== 'closed') expectClearAnswer(r, 'frame');
      ws.terminate();
      counts.protocol += 1;
    }
    const { ws, next } = await connect();
    ws.send(JSON.stringify({ kind: 'request', id: 2, type: 'runs.list' }));
    expect(await next()).toMatchObject({ id: 2, ok: true });
    ws.close();
  }, 60_000);

  it('answers 200+ generated HTTP paths (encodings, traversal, symlinked artifacts) without leaking or dying', async () => {
    const segment = fc.constantFrom(
      '..',
      '.',
      '%2e%2e',
      '%2E%2E%2F',
      '%2f',
      '%5c',
      '..%5c',
      '%',
      '%zz',
      '%E0%A4%A',
      '%c0%af',
      '%00',
      '%ff',
      'index.html',
      'artifacts',
      runId,
      'leak.csv',
      'table.csv',
      'plot.png',
      'out',
      'secret.txt',
      'ws',
      '',
      '\\',
      '//',
      'ä',
    );
    const query = fc.constantFrom('', `?token=${TOKEN}`, '?token=', '?token=%', `?token=${TOKEN}&token=x`);
    const paths = fc.sample(
      fc.tuple(fc.array(segment, { minLength: 1, maxLength: 6 }), query).map(([s, q]) => '/' + s.join('/') + q),
      { numRuns: 220, seed: 16 },
    );
    paths.push(`/artifacts/${runId}/leak.csv?token=${TOKEN}`, `/artifacts/${runId}/plot.png?token=${TOKEN}`, `/artifacts/${runId}/out?token=${TOKEN}`);
    for (const p of paths) {
      const { status, body } = await rawGet(p);
      expect([200, 400, 401, 403, 404, 503], p).toContain(status);
      expect(body, p).not.toContain(SECRET);
      counts.http += 1;
    }
    expect((await rawGet(`/artifacts/${runId}/table.csv?token=${TOKEN}`)).body).toContain('a,b');
    for (const p of [`/artifacts/${runId}/leak.csv?token=${TOKEN}`, `/artifacts/${runId}/plot.png?token=${TOKEN}`]) expect((await rawGet(p)).status).toBe(404);
  }, 60_000);

  it('validates 200+ mutated job configs with one clear line each', async () => {
    const { ws, next } = await connect();
    const seeds = [...fs.readdirSync(EXAMPLES).map((f) => readConfigFile(path.join(EXAMPLES, f))), ...jobKinds().map((k) => ({ method: k.name }))];
    const mutated = fc.sample(
      fc.tuple(
        fc.constantFrom(...seeds),
        fc.array(
          fc.tuple(
            fc.array(
              fc.constantFrom(
                'model',
                'train',
                'data',
                'source',
                'path',
                'init_from',
                'layers',
                'd_model',
                'batch',
                'seq',
                'steps',
                'variants',
                'method',
                '0',
                'heads',
                'lr',
              ),
              { minLength: 1, maxLength: 3 },
            ),
            value,
          ),
          { minLength: 1, maxLength: 3 },
        ),
      ),
      { numRuns: 220, seed: 17 },
    );
    for (const [seed, edits] of mutated) {
      const config = structuredClone(seed) as Record<string, unknown>;
      for (const [keys, v] of edits) setPath(config, keys, v);
      ws.send(JSON.stringify({ kind: 'request', id: 3, type: 'config.validate', params: { config } }));
      const r = await next();
      expectClearAnswer(r, config);
      const result = (r as { result?: { ok: boolean; error?: { code: string; message: string } } }).result;
      if (result && !result.ok) expect(result.error!.message).not.toContain('\n');
      // The engine's own reader of the same config: a NormLabError or a resolved config.
      expectNormLabErrorOrValue(() => resolveConfig(config));
      counts.jobConfigs += 1;
    }
    ws.close();
  }, 60_000);
});

describe('fuzzing the file readers', () => {
  it('reads and builds 200+ mutated config.json files (GPT-2, LLaMA, ViT) as a model or one line, at once', async () => {
    await initBackend('cpu');
    // Each is read and built (allocated), as loading a model folder does.
    const build = (make: () => { dispose(): void }) => make().dispose();
    const bases: [string, (j: Record<string, unknown>) => unknown, Record<string, unknown>][] = [
      ['gpt2', (j) => build(() => createLM('gpt2', j, 0)), { vocab_size: 256, n_positions: 16, n_embd: 16, n_layer: 2, n_head: 2 }],
      [
        'llama',
        (j) => build(() => createLM('llama', j, 0)),
        { vocab_size: 256, hidden_size: 16, intermediate_size: 40, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 16 },
      ],
      [
        'vit',
        (j) => build(() => new ViT(vitConfigFromJson(j), 0)),
        { img_size: 28, patch_size: 7, in_chans: 1, num_classes: 10, embed_dim: 16, depth: 2, num_heads: 2 },
      ],
    ];
    const sizes = fc.oneof(value, fc.constantFrom(0, 1, 3, 7, 100000, 1e9, 2 ** 31, -5, 1.5, 1e-12, 'gelu', 'relu', 'mix'));
    for (const [name, read, base] of bases) {
      const keys = [
        ...Object.keys(base),
        'activation_function',
        'layer_norm_epsilon',
        'rms_norm_eps',
        'layer_norm_eps',
        'mlp_ratio',
        'normlab_ln_sigmas',
        'normlab_norm_variant',
        'mean',
        'std',
        'tie_word_embeddings',
      ];
      for (const edits of fc.sample(fc.array(fc.tuple(fc.constantFrom(...keys), sizes), { minLength: 1, maxLength: 3 }), { numRuns: 80, seed: name.length })) {
        const json = { ...base, ...Object.fromEntries(edits) };
        const t0 = Date.now();
        expectNormLabErrorOrValue(() => read(JSON.parse(JSON.stringify(json))));
        expect(Date.now() - t0, JSON.stringify(json)).toBeLessThan(3000);
        counts.configJson += 1;
      }
    }
  });

  it('parses 300+ mutated safetensors headers as tensors or one line', () => {
    const valid = serializeSafetensors(
      { 'a.weight': { dtype: 'F32', shape: [2, 3], data: new Float32Array(6).fill(1) }, b: { dtype: 'I32', shape: [2], data: new Int32Array([1, 2]) } },
      { format: 'pt' },
    );
    const headerLen = Number(new DataView(valid.buffer, valid.byteOffset, 8).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(valid.subarray(8, 8 + headerLen))) as Record<string, Record<string, unknown>>;
    const withHeader = (h: unknown, data = valid.subarray(8 + headerLen)): Uint8Array => {
      const text = new TextEncoder().encode(JSON.stringify(h));
      const out = new Uint8Array(8 + text.length + data.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(text.length), true);
      out.set(text, 8);
      out.set(data, 8 + text.length);
      return out;
    };
    const field = fc.constantFrom('dtype', 'shape', 'data_offsets', 'extra');
    const headerEdits = fc.sample(
      fc.tuple(
        fc.constantFrom('a.weight', 'b', '__metadata__', 'c'),
        field,
        fc.oneof(value, fc.constantFrom('F16', 'X9', [0, 1e12], [24, 0], [-1, 24], [2, 3, 0], [1e10, 1e10])),
      ),
      { numRuns: 200, seed: 18 },
    );
    for (const [tensor, key, v] of headerEdits) {
      const h = structuredClone(header);
      h[tensor] = typeof h[tensor] === 'object' && h[tensor] !== null ? { ...h[tensor], [key]: v } : ({ [key]: v } as Record<string, unknown>);
      expectNormLabErrorOrValue(() => parseSafetensors(withHeader(h), 'fuzz.safetensors'));
      counts.safetensors += 1;
    }
    // Byte flips anywhere in the length field and header, and truncations.
    for (const [at, byte] of fc.sample(fc.tuple(fc.nat({ max: 8 + headerLen - 1 }), fc.integer({ min: 0, max: 255 })), { numRuns: 100, seed: 19 })) {
      const bytes = valid.slice();
      bytes[at] = byte;
      expectNormLabErrorOrValue(() => parseSafetensors(bytes, 'fuzz.safetensors'));
      counts.safetensors += 1;
    }
    for (let cut = 0; cut < valid.length; cut += 7) {
      expectNormLabErrorOrValue(() => parseSafetensors(valid.subarray(0, cut), 'fuzz.safetensors'));
      counts.safetensors += 1;
    }
  });
});

/** The call returns, or throws a NormLabError with a known code and a one-line message. */
function expectNormLabErrorOrValue(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!(err instanceof NormLabError)) counts.stackTraces += 1; // an unexpected error is a crash
    expect(err).toBeInstanceOf(NormLabError);
    expect(ERROR_CODES).toContain((err as NormLabError).code);
    expect((err as NormLabError).message).not.toContain('\n');
  }
}

/** Set obj[k0][k1]... = v, creating objects on the way (arrays and values are replaced). */
function setPath(obj: Record<string, unknown>, keys: string[], v: unknown): void {
  let at = obj;
  for (const k of keys.slice(0, -1)) {
    if (typeof at[k] !== 'object' || at[k] === null) at[k] = {};
    at = at[k] as Record<string, unknown>;
  }
  at[keys.at(-1)!] = v;
}

/** GET a raw path (any bytes, not only what an HTTP client would send); resolves status and body. */
function rawGet(p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d) => (data += d.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      resolve({ status, body: data.slice(data.indexOf('\r\n\r\n') + 4) });
    });
    socket.write(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`, 'latin1');
  });
}
