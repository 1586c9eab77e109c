/* Fused kernels; see kernels.h. The element-wise loops are written branch-free so that GCC
 * vectorizes them (AVX2 + FMA where the addon was built for x86-64-v3, see binding.gyp); exp and
 * erf are polynomial approximations accurate to a few float ulps, since libm's scalar calls would
 * not vectorize. Row reductions are marked `omp simd` (compiled with -fopenmp-simd: vector lanes,
 * no threads), which lets GCC reorder those sums. Each kernel splits its rows, elements or heads
 * over the thread pool (pool.h) with parallel_for; each chunk writes only its own outputs. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "pool.h"

/* parallel_for: [0, n) in at most pool_threads() chunks of at least `min_chunk` items, each a
 * multiple of `align`; fn(args, lo, hi) runs once per chunk, on the caller and the pool's workers. */
typedef void (*range_fn)(const void *args, int64_t lo, int64_t hi);
typedef struct {
  range_fn fn;
  const void *args;
  int64_t n, chunk;
} range_job;

static void range_task(void *ctx, int part) {
  const range_job *j = ctx;
  const int64_t lo = part * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
  if (lo < hi) j->fn(j->args, lo, hi);
}

static void parallel_for(int64_t n, int64_t min_chunk, int64_t align, range_fn fn, const void *args) {
  const int threads = pool_threads();
  if (threads <= 1 || n < 2 * min_chunk) {
    fn(args, 0, n);
    return;
  }
  int64_t chunk = (n + threads - 1) / threads;
  chunk = (chunk + align - 1) / align * align;
  const range_job j = {fn, args, n, chunk};
  pool_run(range_task, (void *)&j, (int)((n + chunk - 1) / chunk));
}

/* Element-wise work below this many floats per chunk is not worth a thread hand-off (~10 us). */
#define MIN_ELEMS 32768

const char *kernels_simd(void) {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__) && defined(__FMA__)
  return "avx2+fma";
#elif defined(__SSE2__)
  return "sse2";
#else
  return "scalar";
#endif
}

/* exp(x) by Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial
 * for exp(r) (Cephes expf's coefficients); 2^n is built in the exponent bits. */
static inline float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

static inline float fast_exp(float x) {
  x = clampf(x, -87.3f, 88.7f);
  /* n = round(x / ln2) by the 1.5 * 2^23 trick (exact for |n| < 2^22; no libm call to block vectorizing) */
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = ((int32_t)n + 127) << 23;
  float two_n;
  memcpy(&two_n, &bits, sizeof two_n);
  return p * two_n;
}

/* erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (saturated outside): the rational approximation Eigen
 * and XLA use for float erf. */
static inline float fast_erf(float x) {
  x = clampf(x, -4.0f, 4.0f);
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return x * p / q;
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1): exact at the saturated ends, absolute error ~1e-7 near 0. */
static inline float fast_tanh(float u) { return 1.0f - 2.0f / (fast_exp(2.0f * u) + 1.0f); }

#define SQRT1_2 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define SQRT_2_PI 0.79788456080286536f /* sqrt(2/pi) */
#define GELU_C 0.044715f

typedef struct {
  const float *x, *dy;
  float *y;
  int tanh_form;
} gelu_args;

static void gelu_fwd_range(const void *args, int64_t lo, int64_t hi) {
  const gelu_args *a = args;
  const float *x = a->x;
  float *y = a->y;
  if (a->tanh_form) {
    for (int64_t i = lo; i < hi; i++) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.0f + fast_tanh(SQRT_2_PI * (v + GELU_C * v * v * v)));
    }
  } else {
    for (int64_t i = lo; i < hi; i++) y[i] = 0.5f * x[i] * (1.0f + fast_erf(x[i] * SQRT1_2));
  }
}

void gelu_fwd(const float *x, float *y, int64_t n, int tanh_form) {
  const gelu_args a = {x, NULL, y, tanh_form};
  parallel_for(n, MIN_ELEMS, 16, gelu_fwd_range, &a);
}

static void gelu_bwd_range(const void *args, int64_t lo, int64_t hi) {
  const gelu_args *a = args;
  const float *x = a->x, *dy = a->dy;
  float *dx = a->y;
  if (a->tanh_form) {
    for (int64_t i = lo; i < hi; i++) {
      const float v = x[i];
      const float t = fast_tanh(SQRT_2_PI * (v + GELU_C * v * v * v));
      const float du = SQRT_2_PI * (1.0f + 3.0f * GELU_C * v * v);
      dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
  } else {
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    for (int64_t i = lo; i < hi; i++) {
      const float v = x[i];
      dx[i] = dy[i] * (0.5f * (1.0f + fast_erf(v * SQRT1_2)) + v * INV_SQRT_2PI * fast_exp(-0.5f * v * v));
    }
  }
}

void gelu_bwd(const float *x, const float *dy, float *dx, int64_t n, int tanh_form) {
  const gelu_args a = {x, dy, dx, tanh_form};
  parallel_for(n, MIN_ELEMS, 16, gelu_bwd_range, &a);
}

static inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

typedef struct {
  const float *g, *u, *dy;
  float *y, *du;
} swiglu_args;

static void swiglu_fwd_range(const void *args, int64_t lo, int64_t hi) {
  const swiglu_args *a = args;
  for (int64_t i = lo; i < hi; i++) a->y[i] = a->g[i] * fast_sigmoid(a->g[i]) * a->u[i];
}

void swiglu_fwd(const float *g, const float *u, float *y, int64_t n) {
  const swiglu_args a = {g, u, NULL, y, NULL};
  parallel_for(n, MIN_ELEMS, 16, swiglu_fwd_range, &a);
}

static void swiglu_bwd_range(const void *args, int64_t lo, int64_t hi) {
  const swiglu_args *a = args;
  const float *g = a->g, *u = a->u, *dy = a->dy;
  float *dg = a->y, *du = a->du;
  for (int64_t i = lo; i < hi; i++) {
    const float s = fast_sigmoid(g[i]);
    du[i] = dy[i] * g[i] * s;
    dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

void swiglu_bwd(const float *g, const float *u, const float *dy, float *dg, float *du, int64_t n) {
  const swiglu_args a = {g, u, dy, dg, du};
  parallel_for(n, MIN_ELEMS, 16, swiglu_bwd_range, &a);
}

typedef struct {
  const float *x, *cos, *sin;
  float *y;
  int64_t T, hs;
  int backward;
} rope_args;

/* Rows [lo, hi): forward y = x cos + rotate_half(x) sin, or backward dx from dy (in x). */
static void rope_range(const void *args, int64_t lo, int64_t hi) {
  const rope_args *a = args;
  const int64_t hs = a->hs, h = hs / 2;
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = a->x + r * hs, *c = a->cos + (r % a->T) * hs, *s = a->sin + (r % a->T) * hs;
    float *yr = a->y + r * hs;
    if (a->backward)
      for (int64_t j = 0; j < h; j++) {
        yr[j] = xr[j] * c[j] + xr[j + h] * s[j + h];
        yr[j + h] = xr[j + h] * c[j + h] - xr[j] * s[j];
      }
    else
      for (int64_t j = 0; j < h; j++) {
        yr[j] = xr[j] * c[j] - xr[j + h] * s[j];
        yr[j + h] = xr[j + h] * c[j + h] + xr[j] * s[j + h];
      }
  }
}

void rope_fwd(const float *x, const float *cos, const float *sin, float *y, int64_t rows, int64_t T, int64_t hs) {
  const rope_args a = {x, cos, sin, y, T, hs, 0};
  parallel_for(rows, MIN_ELEMS / hs + 1, 1, rope_range, &a);
}

void rope_bwd(const float *dy, const float *cos, const float *sin, float *dx, int64_t rows, int64_t T, int64_t hs) {
  const rope_args a = {dy, cos, sin, dx, T, hs, 1};
  parallel_for(rows, MIN_ELEMS / hs + 1, 1, rope_range, &a);
}

typedef struct {
  const float *x, *gamma, *beta, *mean, *rstd, *dy;
  float *y, *mean_out, *rstd_out, *dgamma_parts, *dbeta_parts;
  int64_t C, chunk;
  float eps;
  int rms;
} norm_args;

static void norm_fwd_range(const void *args, int64_t lo, int64_t hi) {
  const norm_args *a = args;
  const int64_t C = a->C;
  const float *gamma = a->gamma, *beta = a->beta;
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = a->x + r * C;
    float *yr = a->y + r * C;
    float mu = 0.0f;
    if (!a->rms) {
#pragma omp simd reduction(+ : mu)
      for (int64_t c = 0; c < C; c++) mu += xr[c];
      mu /= (float)C;
    }
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int64_t c = 0; c < C; c++) var += (xr[c] - mu) * (xr[c] - mu);
    const float rs = 1.0f / sqrtf(var / (float)C + a->eps);
    a->mean_out[r] = mu;
    a->rstd_out[r] = rs;
    if (gamma && beta)
      for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
    else if (gamma)
      for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs * gamma[c];
    else
      for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs + (beta ? beta[c] : 0.0f);
  }
}

void norm_fwd(const float *x, const float *gamma, const float *beta, float *y, float *mean, float *rstd,
              int64_t rows, int64_t C, float eps, int rms) {
  const norm_args a = {.x = x, .gamma = gamma, .beta = beta, .y = y, .mean_out = mean, .rstd_out = rstd, .C = C,
                       .eps = eps, .rms = rms};
  parallel_for(rows, MIN_ELEMS / C + 1, 1, norm_fwd_range, &a);
}

/* Rows [lo, hi) of dx, and their sums for dgamma / dbeta into the chunk's own partial row. */
static void norm_bwd_range(const void *args, int64_t lo, int64_t hi) {
  const norm_args *a = args;
  const int64_t C = a->C, part = lo / a->chunk;
  const float *gamma = a->gamma;
  float *dgamma = a->dgamma_parts ? a->dgamma_parts + part * C : NULL;
  float *dbeta = a->dbeta_parts ? a->dbeta_parts + part * C : NULL;
  for (int64_t r = lo; r < hi; r++) {
    const float *xr = a->x + r * C, *dyr = a->dy + r * C;
    float *dxr = a->y + r * C;
    const float mu = a->mean[r], rs = a->rstd[r];
    /* xhat = (x - mu) rs; g = dy gamma; dx = rs (g - mean(g) - xhat mean(g xhat)), no mean(g) for RMS */
    float sum_g = 0.0f, sum_gx = 0.0f;
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t c = 0; c < C; c++) {
      const float g = dyr[c] * (gamma ? gamma[c] : 1.0f);
      sum_g += g;
      sum_gx += g * (xr[c] - mu) * rs;
    }
    const float mg = a->rms ? 0.0f : sum_g / (float)C, mgx = sum_gx / (float)C;
    for (int64_t c = 0; c < C; c++) {
      const float xhat = (xr[c] - mu) * rs;
      dxr[c] = rs * (dyr[c] * (gamma ? gamma[c] : 1.0f) - mg - xhat * mgx);
    }
    if (dgamma)
      for (int64_t c = 0; c < C; c++) dgamma[c] += dyr[c] * (xr[c] - mu) * rs;
    if (dbeta)
      for (int64_t c = 0; c < C; c++) dbeta[c] += dyr[c];
  }
}

void norm_bwd(const float *x, const float *gamma, const float *mean, const float *rstd, const float *dy, float *dx,
              float *dgamma, float *dbeta, int64_t rows, int64_t C, int rms) {
  const int threads = pool_threads();
  const int64_t min_rows = MIN_ELEMS / C + 1;
  const int64_t chunk = threads > 1 && rows >= 2 * min_rows ? (rows + threads - 1) / threads : (rows > 0 ? rows : 1);
  const int64_t parts = chunk > 0 ? (rows + chunk - 1) / chunk : 1;
  /* one partial dgamma / dbeta row per chunk, summed after (a fixed order: results do not depend
   * on which thread ran which chunk) */
  float *partial = calloc((size_t)(2 * parts * C), sizeof(float));
  if (!partial) abort();
  const norm_args a = {.x = x, .gamma = gamma, .mean = mean, .rstd = rstd, .dy = dy, .y = dx,
                       .dgamma_parts = dgamma ? partial : NULL, .dbeta_parts = dbeta ? partial + parts * C : NULL,
                       .C = C, .chunk = chunk, .rms = rms};
  if (parts > 1) {
    const range_job j = {norm_bwd_range, &a, rows, chunk};
    pool_run(range_task, (void *)&j, (int)parts);
  } else {
    norm_bwd_range(&a, 0, rows);
  }
  for (int64_t c = 0; c < C; c++) {
    float g = 0.0f, b = 0.0f;
    for (int64_t p = 0; p < parts; p++) {
      g += partial[p * C + c];
      b += partial[(parts + p) * C + c];
    }
    if (dgamma) dgamma[c] = g;
    if (dbeta) dbeta[c] = b;
  }
  free(partial);
}

/* Row i of a (T, Tk) score matrix sees keys j <= i + (Tk - T) when causal. */
static inline int64_t visible(int64_t i, int64_t T, int64_t Tk, int causal) { return causal ? i + (Tk - T) + 1 : Tk; }

/* Offset of batch b, head h in a layout. */
static inline int64_t head_at(const head_layout *l, int64_t b, int64_t h) { return b * l->sb + h * l->sh; }

/* Causal attention runs in blocks of ROW_BLOCK query rows, each against only the keys some row of
 * the block can see: at T = 128 that skips 1/4 of the products. (Blocks of 64 measured faster
 * than 32 or 128: smaller blocks save products but pay OpenBLAS's per-call cost more often.) */
#define ROW_BLOCK 64

/* Keys seen by query rows [r0, r1): all of them, or up to the last row's causal horizon. */
static inline int keys_for(int64_t r1, int64_t T, int64_t Tk, int causal) { return (int)(causal ? r1 + (Tk - T) : Tk); }

typedef struct {
  const float *q, *k, *v, *probs, *dout;
  float *out, *probs_out, *dq, *dk, *dv;
  const attn_shape *s;
  float scale;
} attn_args;

/* The forward for heads bh in [lo, hi) (bh = b H + h). */
static void attention_fwd_range(const void *args, int64_t lo, int64_t hi) {
  const attn_args *a = args;
  const attn_shape *s = a->s;
  const float scale = a->scale;
  const int T = (int)s->T, Tk = (int)s->Tk, hs = (int)s->hs;
  const int ldq = (int)s->q.ld, ldk = (int)s->k.ld, ldv = (int)s->v.ld, ldo = (int)s->o.ld;
  for (int64_t bh = lo; bh < hi; bh++) {
    const int64_t b = bh / s->H, h = bh % s->H;
    float *S = a->probs_out + bh * T * Tk;
    const float *qh = a->q + head_at(&s->q, b, h), *kh = a->k + head_at(&s->k, b, h), *vh = a->v + head_at(&s->v, b, h);
    float *oh = a->out + head_at(&s->o, b, h);
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
      const int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T, n = keys_for(r1, T, Tk, s->causal);
      float *Sb = S + (int64_t)r0 * Tk;
      if (n <= 0) { /* no key visible to any row of the block */
        memset(Sb, 0, (size_t)(r1 - r0) * (size_t)Tk * sizeof(float));
        for (int i = r0; i < r1; i++) memset(oh + (int64_t)i * ldo, 0, (size_t)hs * sizeof(float));
        continue;
      }
      blas_sgemm(0, 1, r1 - r0, n, hs, qh + (int64_t)r0 * ldq, ldq, kh, ldk, 0.0f, Sb, Tk); /* q k^T */
      for (int64_t i = r0; i < r1; i++) {
        float *row = S + i * Tk;
        const int64_t m = visible(i, T, Tk, s->causal);
        if (m <= 0) {
          memset(row, 0, (size_t)Tk * sizeof(float));
          continue;
        }
        float mx = row[0];
#pragma omp simd reduction(max : mx)
        for (int64_t j = 1; j < m; j++) mx = row[j] > mx ? row[j] : mx;
        float z = 0.0f;
#pragma omp simd reduction(+ : z)
        for (int64_t j = 0; j < m; j++) {
          row[j] = fast_exp((row[j] - mx) * scale);
          z += row[j];
        }
        const float inv = 1.0f / z;
        for (int64_t j = 0; j < m; j++) row[j] *= inv;
        for (int64_t j = m; j < Tk; j++) row[j] = 0.0f;
      }
      blas_sgemm(0, 0, r1 - r0, hs, n, Sb, Tk, vh, ldv, 0.0f, oh + (int64_t)r0 * ldo, ldo); /* P v */
    }
  }
}

void attention_fwd(const float *q, const float *k, const float *v, float *out, float *probs, const attn_shape *s,
                   float scale) {
  const attn_args a = {.q = q, .k = k, .v = v, .out = out, .probs_out = probs, .s = s, .scale = scale};
  parallel_for(s->B * s->H, 1, 1, attention_fwd_range, &a);
}

/* Zero `rows` rows of hs floats, ld apart. */
static void zero_rows(float *x, int64_t rows, int64_t hs, int64_t ld) {
  for (int64_t i = 0; i < rows; i++) memset(x + i * ld, 0, (size_t)hs * sizeof(float));
}

/* The backward for heads bh in [lo, hi), with its own scratch rows for dS. */
static void attention_bwd_range(const void *args, int64_t lo, int64_t hi) {
  const attn_args *a = args;
  const attn_shape *s = a->s;
  const float scale = a->scale;
  const int T = (int)s->T, Tk = (int)s->Tk, hs = (int)s->hs;
  const int ldq = (int)s->q.ld, ldk = (int)s->k.ld, ldv = (int)s->v.ld, ldo = (int)s->o.ld;
  float *dS = malloc((size_t)ROW_BLOCK * (size_t)Tk * sizeof(float));
  if (!dS) abort();
  for (int64_t bh = lo; bh < hi; bh++) {
    const int64_t b = bh / s->H, h = bh % s->H;
    const float *P = a->probs + bh * T * Tk, *dO = a->dout + head_at(&s->o, b, h);
    const int64_t oq = head_at(&s->q, b, h), ok = head_at(&s->k, b, h), ov = head_at(&s->v, b, h);
    zero_rows(a->dk + ok, Tk, hs, ldk); /* dK and dV accumulate over the row blocks */
    zero_rows(a->dv + ov, Tk, hs, ldv);
    for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
      const int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T, rows = r1 - r0, n = keys_for(r1, T, Tk, s->causal);
      if (n <= 0) {
        zero_rows(a->dq + oq + (int64_t)r0 * ldq, rows, hs, ldq);
        continue;
      }
      const float *Pb = P + (int64_t)r0 * Tk, *dOb = dO + (int64_t)r0 * ldo;
      blas_sgemm(1, 0, n, hs, rows, Pb, Tk, dOb, ldo, 1.0f, a->dv + ov, ldv); /* dV += P^T dO */
      blas_sgemm(0, 1, rows, n, hs, dOb, ldo, a->v + ov, ldv, 0.0f, dS, Tk);  /* dP = dO V^T */
      /* softmax backward, through the scale: dS = scale * P (dP - rowsum(P dP)) */
      for (int64_t i = 0; i < rows; i++) {
        const float *p = Pb + i * Tk;
        float *d = dS + i * Tk;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < n; j++) dot += p[j] * d[j];
        for (int64_t j = 0; j < n; j++) d[j] = scale * p[j] * (d[j] - dot);
      }
      blas_sgemm(0, 0, rows, hs, n, dS, Tk, a->k + ok, ldk, 0.0f, a->dq + oq + (int64_t)r0 * ldq, ldq); /* dQ = dS K */
      blas_sgemm(1, 0, n, hs, rows, dS, Tk, a->q + oq + (int64_t)r0 * ldq, ldq, 1.0f, a->dk + ok, ldk);  /* dK += dS^T Q */
    }
  }
  free(dS);
}

void attention_bwd(const float *q, const float *k, const float *v, const float *probs, const float *dout, float *dq,
                   float *dk, float *dv, const attn_shape *s, float scale) {
  const attn_args a = {.q = q, .k = k, .v = v, .probs = probs, .dout = dout, .dq = dq, .dk = dk, .dv = dv, .s = s,
                       .scale = scale};
  parallel_for(s->B * s->H, 1, 1, attention_bwd_range, &a);
}

typedef struct {
  const float *logits, *lse_in, *dloss;
  const int32_t *targets;
  float *loss, *lse, *dlogits;
  int64_t V;
} xent_args;

static void xent_fwd_range(const void *args, int64_t lo, int64_t hi) {
  const xent_args *a = args;
  const int64_t V = a->V;
  for (int64_t i = lo; i < hi; i++) {
    const float *row = a->logits + i * V;
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int64_t j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
    float z = 0.0f;
#pragma omp simd reduction(+ : z)
    for (int64_t j = 0; j < V; j++) z += fast_exp(row[j] - mx);
    a->lse[i] = mx + logf(z);
    const int32_t t = a->targets[i];
    a->loss[i] = t >= 0 && t < V ? a->lse[i] - row[t] : NAN;
  }
}

void xent_fwd(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t N, int64_t V) {
  const xent_args a = {.logits = logits, .targets = targets, .loss = loss, .lse = lse, .V = V};
  parallel_for(N, MIN_ELEMS / V + 1, 1, xent_fwd_range, &a);
}

static void xent_bwd_range(const void *args, int64_t lo, int64_t hi) {
  const xent_args *a = args;
  const int64_t V = a->V;
  for (int64_t i = lo; i < hi; i++) {
    const float *row = a->logits + i * V;
    float *d = a->dlogits + i * V;
    const float l = a->lse_in[i], g = a->dloss[i];
    for (int64_t j = 0; j < V; j++) d[j] = g * fast_exp(row[j] - l);
    const int32_t t = a->targets[i];
    if (t >= 0 && t < V) d[t] -= g;
  }
}

void xent_bwd(const float *logits, const int32_t *targets, const float *lse, const float *dloss, float *dlogits,
              int64_t N, int64_t V) {
  const xent_args a = {.logits = logits, .targets = targets, .lse_in = lse, .dloss = dloss, .dlogits = dlogits, .V = V};
  parallel_for(N, MIN_ELEMS / V + 1, 1, xent_bwd_range, &a);
}

typedef struct {
  const float *p, *g, *m, *v;
  float *p_out, *m_out, *v_out;
  float lr, b1, b2, eps, wd, ib1, ib2;
} adamw_args;

static void adamw_range(const void *args, int64_t lo, int64_t hi) {
  const adamw_args *a = args;
  const float b1 = a->b1, b2 = a->b2;
  for (int64_t i = lo; i < hi; i++) {
    const float g = a->g[i], mi = b1 * a->m[i] + (1.0f - b1) * g, vi = b2 * a->v[i] + (1.0f - b2) * g * g;
    a->m_out[i] = mi;
    a->v_out[i] = vi;
    a->p_out[i] = a->p[i] - a->lr * (mi * a->ib1 / (sqrtf(vi * a->ib2) + a->eps) + a->wd * a->p[i]);
  }
}

void adamw(const float *p, const float *g, const float *m, const float *v, float *p_out, float *m_out, float *v_out,
           int64_t n, float lr, float b1, float b2, float eps, float wd, float bc1, float bc2) {
  const adamw_args a = {p, g, m, v, p_out, m_out, v_out, lr, b1, b2, eps, wd, 1.0f / bc1, 1.0f / bc2};
  parallel_for(n, MIN_ELEMS, 16, adamw_range, &a);
}
