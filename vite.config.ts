/**
 * The renderer's one build config (electron-vite's shape): a plain Vite + Svelte 5 app in
 * `renderer/`, built to `dist-renderer/`, which browser mode (`normlab serve`) and Electron's
 * `normlab://app` scheme both serve. Relative asset paths so the same build works under either.
 * No inline scripts are emitted (the CSP forbids them): the module preload polyfill is off.
 */
import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

export default defineConfig({
  root: 'renderer',
  base: './',
  plugins: [svelte({ configFile: false })],
  build: {
    outDir: '../dist-renderer',
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1500,
  },
  server: { host: '127.0.0.1' },
});
