/**
 * The Node version the README asks for (and package.json's engines) satisfies every installed
 * package's own engines field, so a fresh install on that version prints no EBADENGINE warning.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const require = createRequire(import.meta.url);
const semver = require('semver') as { satisfies(v: string, range: string): boolean; minVersion(range: string): { version: string } | null };

describe('the Node version asked for', () => {
  it('is what every locked package needs, in the README and in engines', () => {
    const readme = fs.readFileSync('README.md', 'utf8');
    const asked = /On a fresh machine \(Node (\d+\.\d+)\+/.exec(readme)?.[1];
    expect(asked).toBeDefined();
    const pkg = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { engines: { node: string } };
    expect(semver.minVersion(pkg.engines.node)?.version).toBe(`${asked}.0`);
    const lock = JSON.parse(fs.readFileSync('package-lock.json', 'utf8')) as { packages: Record<string, { engines?: { node?: unknown } }> };
    const unmet = Object.entries(lock.packages)
      .filter(([, p]) => typeof p.engines?.node === 'string' && !semver.satisfies(`${asked}.0`, p.engines.node as string))
      .map(([name, p]) => `${name} ${String(p.engines!.node)}`);
    expect(unmet).toEqual([]);
  });
});
