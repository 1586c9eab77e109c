/** Types of bin/build-renderer.mjs (plain JS so `npm install` can run it before anything else). */
export declare const ROOT: string;
export declare function rendererStale(root?: string, outDir?: string): string | null;
export declare function ensureRenderer(opts?: { root?: string; outDir?: string; force?: boolean; log?: (message: string) => void }): {
  built: boolean;
  reason?: string | null;
  error?: string;
};
