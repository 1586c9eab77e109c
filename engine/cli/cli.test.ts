import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = path.resolve(__dirname, '../../bin/normlab.js');

function normlab(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function tmp(name: string, text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

describe('normlab CLI', () => {
  it('--help lists the commands of the contract', () => {
    const r = normlab('--help');
    expect(r.code).toBe(0);
    for (const c of ['run', 'list', 'show', 'resume', 'export', 'eval-lm', 'eval-vit', 'serve', 'bench']) expect(r.stdout).toMatch(new RegExp(`\\n  ${c}\\b`));
  });

  it('a malformed config, an unknown method and a missing file each exit non-zero with one line', () => {
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-p-'));
    const cases = [
      [tmp('bad.yaml', 'method: lm-pretrain\ntrain: [1, 2\n'), /bad\.yaml is not valid YAML/],
      [tmp('unknown.json', '{"method": "make-it-fast"}'), /unknown method "make-it-fast"/],
      ['/nonexistent/config.yaml', /config file \/nonexistent\/config\.yaml does not exist/],
    ] as const;
    for (const [file, message] of cases) {
      const r = normlab('run', file, '--project', project, '--json');
      expect(r.code).not.toBe(0);
      expect(r.stdout).toBe('');
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
    }
  });

  it("run --help-config lists each kind's fields with defaults and the presets with their source", () => {
    const r = normlab('run', '--help-config', 'lm-pretrain');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/train\.beta2: number = 0\.95/);
    expect(r.stdout).toMatch(/lns-paper-130m: LNS LLaMA-130M \(12 layers, d 768, FFN 2048, 12 heads\)/);
    expect(r.stdout).toMatch(/source: .*run_130m\.sh/);
    const all = JSON.parse(normlab('run', '--help-config', '--json').stdout) as { kinds: { name: string; presets: unknown[] }[] };
    expect(all.kinds.map((k) => k.name)).toContain('lct');
    expect(all.kinds.find((k) => k.name === 'lns-study')!.presets.length).toBe(4);
  });

  it('--backend tensorflow fails here with one line naming why', () => {
    const tokens = tmp('t.bin', '');
    const r = normlab('eval-lm', '--model', path.dirname(tokens), '--tokens', tokens, '--backend', 'tensorflow');
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/backend "tensorflow" cannot load: @tensorflow\/tfjs-node-gpu: /);
  });

  it('run --json prints one JSON object on stdout and progress on stderr', () => {
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-p-'));
    const cfg = tmp(
      'tiny.json',
      JSON.stringify({
        method: 'lm-pretrain',
        model: { layers: 1, d_model: 16, heads: 2 },
        train: { steps: 4, batch: 2, seq: 16, warmup: 1, eval_every: 2, eval_windows: 2, checkpoint_every: 4 },
      }),
    );
    const r = normlab('run', cfg, '--project', project, '--json');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const out = JSON.parse(lines[0]);
    expect(out.status).toBe('completed');
    expect(out.summary.final_val_loss).toBeLessThan(out.summary.initial_val_loss);
    expect(r.stderr).toMatch(/completed/);
    const list = JSON.parse(normlab('list', '--project', project, '--json').stdout);
    expect(list.runs[0].id).toBe(out.runId);
  });
});
