/* A small fork-join pool of worker threads for NormLab's native kernels (intra-op parallelism).
 * pool_run(fn, ctx, parts) calls fn(ctx, part) for part = 0 .. parts-1 across the caller and
 * pool_threads() - 1 workers, and returns when all are done. One caller at a time: a second
 * concurrent caller (e.g. another Node worker thread) runs its parts itself, serially. */
#ifndef NORMLAB_POOL_H
#define NORMLAB_POOL_H

typedef void (*pool_task)(void *ctx, int part);

/* Threads used by pool_run, the caller included (1: no workers; at most 16). */
void pool_set_threads(int n);
int pool_threads(void);
void pool_run(pool_task fn, void *ctx, int parts);

#endif
