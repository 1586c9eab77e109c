/**
 * Electron's fuses as the packaged app ships them. The builder configuration must set each fuse
 * (electron-builder flips them in the binary it packages); where a packaged binary exists (after
 * `npm run dist`), its fuse wire is read back with @electron/fuses and must match. The Electron
 * binary cannot be downloaded everywhere, so the second test skips, saying why, where none exists.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FuseState, FuseV1Options, getCurrentFuseWire } from '@electron/fuses';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';

const ROOT = path.resolve(__dirname, '..');

/** The fuses NormLab requires, by the electron-builder key and the fuse they set. */
const REQUIRED = [
  ['runAsNode', FuseV1Options.RunAsNode, false],
  ['enableNodeOptionsEnvironmentVariable', FuseV1Options.EnableNodeOptionsEnvironmentVariable, false],
  ['enableNodeCliInspectArguments', FuseV1Options.EnableNodeCliInspectArguments, false],
  ['enableCookieEncryption', FuseV1Options.EnableCookieEncryption, true],
  ['enableEmbeddedAsarIntegrityValidation', FuseV1Options.EnableEmbeddedAsarIntegrityValidation, true],
  ['onlyLoadAppFromAsar', FuseV1Options.OnlyLoadAppFromAsar, true],
] as const;

/** The packaged app's Electron binary in release/ (linux, windows or macOS layout), if built. */
function packagedBinary(): string | null {
  const release = path.join(ROOT, 'release');
  const candidates = [
    path.join(release, 'linux-unpacked', 'normlab'),
    path.join(release, 'win-unpacked', 'NormLab.exe'),
    ...['mac', 'mac-arm64', 'mac-universal'].map((d) => path.join(release, d, 'NormLab.app')),
  ];
  return candidates.find((f) => fs.existsSync(f)) ?? null;
}

describe('Electron fuses', () => {
  it('electron-builder.yml sets every required fuse', () => {
    const config = YAML.parse(fs.readFileSync(path.join(ROOT, 'electron-builder.yml'), 'utf8')) as { electronFuses?: Record<string, unknown>; asar?: unknown };
    for (const [key, , value] of REQUIRED) expect(config.electronFuses?.[key], key).toBe(value);
    expect(config.asar).toBe(true); // OnlyLoadAppFromAsar needs the app in an asar archive
  });

  const binary = packagedBinary();
  it.skipIf(!binary)(`the packaged binary's fuse wire matches${binary ? '' : ' (skipped: no packaged app in release/; run npm run dist)'}`, async () => {
    const wire = await getCurrentFuseWire(binary!);
    for (const [key, fuse, value] of REQUIRED) expect(wire[fuse], key).toBe(value ? FuseState.ENABLE : FuseState.DISABLE);
  });
});
