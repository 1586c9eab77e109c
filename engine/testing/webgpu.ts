/**
 * Tests on the webgpu backend without a GPU: they run on a software Vulkan driver (SwiftShader,
 * shipped by Debian's chromium package, or Mesa's lavapipe). `softwareVulkan()` points the Vulkan
 * loader at the first driver found: NORMLAB_VULKAN_ICD (a driver's ICD .json), else the known
 * install paths. Where none exists the tests skip with the reason, except under CI (CI or
 * NORMLAB_REQUIRE_WEBGPU set; .ci/run installs the driver), where they fail instead.
 */
import fs from 'node:fs';
import { describe } from 'vitest';
import { probeAdapter } from '../backend/webgpu.js';

const KNOWN_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json', // Debian's chromium: SwiftShader
  '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', // Mesa's lavapipe
  '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json',
];

/** Point VK_ICD_FILENAMES at a software driver (before Dawn first loads); the reason if none. */
export function softwareVulkan(): { icd: string } | { reason: string } {
  const wanted = process.env.NORMLAB_VULKAN_ICD;
  if (wanted && !fs.existsSync(wanted)) return { reason: `NORMLAB_VULKAN_ICD=${wanted} does not exist` };
  const icd = wanted ?? KNOWN_ICDS.find((p) => fs.existsSync(p));
  if (!icd) return { reason: `no software Vulkan driver (set NORMLAB_VULKAN_ICD or install chromium; looked in ${KNOWN_ICDS.join(', ')})` };
  process.env.VK_ICD_FILENAMES = icd;
  return { icd };
}

/** Why webgpu cannot run here, or null when it can (an adapter on a software driver). */
async function unavailable(): Promise<string | null> {
  const sw = softwareVulkan();
  if ('reason' in sw) return sw.reason;
  const probe = await probeAdapter();
  return 'reason' in probe ? `${probe.reason} (ICD ${sw.icd})` : null;
}

const reason = await unavailable();
if (reason && (process.env.CI || process.env.NORMLAB_REQUIRE_WEBGPU)) throw new Error(`webgpu tests cannot run under CI: ${reason}`);
if (reason) process.stderr.write(`webgpu tests skipped: ${reason}\n`);

/** `describe` for webgpu tests: skipped with the reason where no software driver is present. */
export const describeWebgpu = reason ? describe.skip : describe;
