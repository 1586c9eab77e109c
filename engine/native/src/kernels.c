/* Fused kernels; see kernels.h. The element-wise loops are written branch-free so that GCC
 * vectorizes them (AVX2 + FMA where the addon was built for x86-64-v3, see binding.gyp); exp and
 * erf are polynomial approximations accurate to a few float ulps, since libm's scalar calls would
 * not vectorize. Row reductions are marked `omp simd` (compiled with -fopenmp-simd: vector lanes,
 * no threads), which lets GCC reorder those sums. */
#include "kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"

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

void gelu_fwd(const float *x, float *y, int64_t n, int tanh_form) {
  if (tanh_form) {
    for (int64_t i = 0; i < n; i++) {
      const float v = x[i];
      y[i] = 0.5f * v * (1.0f + fast_tanh(SQRT_2_PI * (v + GELU_C * v * v * v)));
    }
  } else {
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + fast_erf(x[i] * SQRT1_2));
  }
}

void gelu_bwd(const float *x, const float *dy, float *dx, int64_t n, int tanh_form) {
  if (tanh_form) {
    for (int64_t i = 0; i < n; i++) {
      const float v = x[i];
      const float t = fast_tanh(SQRT_2_PI * (v + GELU_C * v * v * v));
      const float du = SQRT_2_PI * (1.0f + 3.0f * GELU_C * v * v);
      dx[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
  } else {
    /* d/dx x Phi(x) = Phi(x) + x phi(x) */
    for (int64_t i = 0; i < n; i++) {
      const float v = x[i];
      dx[i] = dy[i] * (0.5f * (1.0f + fast_erf(v * SQRT1_2)) + v * INV_SQRT_2PI * fast_exp(-0.5f * v * v));
    }
  }
}

static inline float fast_sigmoid(float x) { return 1.0f / (1.0f + fast_exp(-x)); }

void swiglu_fwd(const float *g, const float *u, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = g[i] * fast_sigmoid(g[i]) * u[i];
}

void swiglu_bwd(const float *g, const float *u, const float *dy, float *dg, float *du, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = fast_sigmoid(g[i]);
    du[i] = dy[i] * g[i] * s;
    dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

void rope_fwd(const float *x, const float *cos, const float *sin, float *y, int64_t rows, int64_t T, int64_t hs) {
  const int64_t h = hs / 2;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * hs, *c = cos + (r % T) * hs, *s = sin + (r % T) * hs;
    float *yr = y + r * hs;
    for (int64_t j = 0; j < h; j++) {
      yr[j] = xr[j] * c[j] - xr[j + h] * s[j];
      yr[j + h] = xr[j + h] * c[j + h] + xr[j] * s[j + h];
    }
  }
}

void rope_bwd(const float *dy, const float *cos, const float *sin, float *dx, int64_t rows, int64_t T, int64_t hs) {
  const int64_t h = hs / 2;
  for (int64_t r = 0; r < rows; r++) {
    const float *d = dy + r * hs, *c = cos + (r % T) * hs, *s = sin + (r % T) * hs;
    float *o = dx + r * hs;
    for (int64_t j = 0; j < h; j++) {
      o[j] = d[j] * c[j] + d[j + h] * s[j + h];
      o[j + h] = d[j + h] * c[j + h] - d[j] * s[j];
    }
  }
}

void norm_fwd(const float *x, const float *gamma, const float *beta, float *y, float *mean, float *rstd,
              int64_t rows, int64_t C, float eps, int rms) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C;
    float mu = 0.0f;
    if (!rms) {
#pragma omp simd reduction(+ : mu)
      for (int64_t c = 0; c < C; c++) mu += xr[c];
      mu /= (float)C;
    }
    float var = 0.0f;
#pragma omp simd reduction(+ : var)
    for (int64_t c = 0; c < C; c++) var += (xr[c] - mu) * (xr[c] - mu);
    const float rs = 1.0f / sqrtf(var / (float)C + eps);
    mean[r] = mu;
    rstd[r] = rs;
    if (gamma && beta)
      for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs * gamma[c] + beta[c];
    else if (gamma)
      for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs * gamma[c];
    else
      for (int64_t c = 0; c < C; c++) yr[c] = (xr[c] - mu) * rs + (beta ? beta[c] : 0.0f);
  }
}

void norm_bwd(const float *x, const float *gamma, const float *mean, const float *rstd, const float *dy, float *dx,
              float *dgamma, float *dbeta, int64_t rows, int64_t C, int rms) {
  if (dgamma) memset(dgamma, 0, (size_t)C * sizeof(float));
  if (dbeta) memset(dbeta, 0, (size_t)C * sizeof(float));
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * C, *dyr = dy + r * C;
    float *dxr = dx + r * C;
    const float mu = mean[r], rs = rstd[r];
    /* xhat = (x - mu) rs; g = dy gamma; dx = rs (g - mean(g) - xhat mean(g xhat)), no mean(g) for RMS */
    float sum_g = 0.0f, sum_gx = 0.0f;
#pragma omp simd reduction(+ : sum_g, sum_gx)
    for (int64_t c = 0; c < C; c++) {
      const float g = dyr[c] * (gamma ? gamma[c] : 1.0f);
      sum_g += g;
      sum_gx += g * (xr[c] - mu) * rs;
    }
    const float mg = rms ? 0.0f : sum_g / (float)C, mgx = sum_gx / (float)C;
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

/* Row i of a (T, Tk) score matrix sees keys j <= i + (Tk - T) when causal. */
static inline int64_t visible(int64_t i, int64_t T, int64_t Tk, int causal) { return causal ? i + (Tk - T) + 1 : Tk; }

/* Offset of batch b, head h in a layout. */
static inline int64_t head_at(const head_layout *l, int64_t b, int64_t h) { return b * l->sb + h * l->sh; }

/* Causal attention runs in blocks of ROW_BLOCK query rows, each against only the keys some row of
 * the block can see, which skips ~3/8 of the products at T = 128 and more at longer T. */
#define ROW_BLOCK 32

/* Keys seen by query rows [r0, r1): all of them, or up to the last row's causal horizon. */
static inline int keys_for(int64_t r1, int64_t T, int64_t Tk, int causal) { return (int)(causal ? r1 + (Tk - T) : Tk); }

void attention_fwd(const float *q, const float *k, const float *v, float *out, float *probs, const attn_shape *s,
                   float scale) {
  const int T = (int)s->T, Tk = (int)s->Tk, hs = (int)s->hs;
  const int ldq = (int)s->q.ld, ldk = (int)s->k.ld, ldv = (int)s->v.ld, ldo = (int)s->o.ld;
  for (int64_t b = 0; b < s->B; b++)
    for (int64_t h = 0; h < s->H; h++) {
      float *S = probs + (b * s->H + h) * T * Tk;
      const float *qh = q + head_at(&s->q, b, h), *kh = k + head_at(&s->k, b, h), *vh = v + head_at(&s->v, b, h);
      float *oh = out + head_at(&s->o, b, h);
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

/* Zero `rows` rows of hs floats, ld apart. */
static void zero_rows(float *x, int64_t rows, int64_t hs, int64_t ld) {
  for (int64_t i = 0; i < rows; i++) memset(x + i * ld, 0, (size_t)hs * sizeof(float));
}

void attention_bwd(const float *q, const float *k, const float *v, const float *probs, const float *dout, float *dq,
                   float *dk, float *dv, const attn_shape *s, float scale) {
  const int T = (int)s->T, Tk = (int)s->Tk, hs = (int)s->hs;
  const int ldq = (int)s->q.ld, ldk = (int)s->k.ld, ldv = (int)s->v.ld, ldo = (int)s->o.ld;
  float *dS = malloc((size_t)ROW_BLOCK * (size_t)Tk * sizeof(float));
  if (!dS) abort();
  for (int64_t b = 0; b < s->B; b++)
    for (int64_t h = 0; h < s->H; h++) {
      const float *P = probs + (b * s->H + h) * T * Tk, *dO = dout + head_at(&s->o, b, h);
      const int64_t oq = head_at(&s->q, b, h), ok = head_at(&s->k, b, h), ov = head_at(&s->v, b, h);
      zero_rows(dk + ok, Tk, hs, ldk); /* dK and dV accumulate over the row blocks */
      zero_rows(dv + ov, Tk, hs, ldv);
      for (int r0 = 0; r0 < T; r0 += ROW_BLOCK) {
        const int r1 = r0 + ROW_BLOCK < T ? r0 + ROW_BLOCK : T, rows = r1 - r0, n = keys_for(r1, T, Tk, s->causal);
        if (n <= 0) {
          zero_rows(dq + oq + (int64_t)r0 * ldq, rows, hs, ldq);
          continue;
        }
        const float *Pb = P + (int64_t)r0 * Tk, *dOb = dO + (int64_t)r0 * ldo;
        blas_sgemm(1, 0, n, hs, rows, Pb, Tk, dOb, ldo, 1.0f, dv + ov, ldv); /* dV += P^T dO */
        blas_sgemm(0, 1, rows, n, hs, dOb, ldo, v + ov, ldv, 0.0f, dS, Tk);  /* dP = dO V^T */
        /* softmax backward, through the scale: dS = scale * P (dP - rowsum(P dP)) */
        for (int64_t i = 0; i < rows; i++) {
          const float *p = Pb + i * Tk;
          float *d = dS + i * Tk;
          float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
          for (int64_t j = 0; j < n; j++) dot += p[j] * d[j];
          for (int64_t j = 0; j < n; j++) d[j] = scale * p[j] * (d[j] - dot);
        }
        blas_sgemm(0, 0, rows, hs, n, dS, Tk, k + ok, ldk, 0.0f, dq + oq + (int64_t)r0 * ldq, ldq); /* dQ = dS K */
        blas_sgemm(1, 0, n, hs, rows, dS, Tk, q + oq + (int64_t)r0 * ldq, ldq, 1.0f, dk + ok, ldk);  /* dK += dS^T Q */
      }
    }
  free(dS);
}

void xent_fwd(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; i++) {
    const float *row = logits + i * V;
    float mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int64_t j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
    float z = 0.0f;
#pragma omp simd reduction(+ : z)
    for (int64_t j = 0; j < V; j++) z += fast_exp(row[j] - mx);
    lse[i] = mx + logf(z);
    const int32_t t = targets[i];
    loss[i] = t >= 0 && t < V ? lse[i] - row[t] : NAN;
  }
}

void xent_bwd(const float *logits, const int32_t *targets, const float *lse, const float *dloss, float *dlogits,
              int64_t N, int64_t V) {
  for (int64_t i = 0; i < N; i++) {
    const float *row = logits + i * V;
    float *d = dlogits + i * V;
    const float l = lse[i], g = dloss[i];
    for (int64_t j = 0; j < V; j++) d[j] = g * fast_exp(row[j] - l);
    const int32_t t = targets[i];
    if (t >= 0 && t < V) d[t] -= g;
  }
}

void adamw(const float *p, const float *g, const float *m, const float *v, float *p_out, float *m_out, float *v_out,
           int64_t n, float lr, float b1, float b2, float eps, float wd, float bc1, float bc2) {
  const float ib1 = 1.0f / bc1, ib2 = 1.0f / bc2;
  for (int64_t i = 0; i < n; i++) {
    const float mi = b1 * m[i] + (1.0f - b1) * g[i];
    const float vi = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    m_out[i] = mi;
    v_out[i] = vi;
    p_out[i] = p[i] - lr * (mi * ib1 / (sqrtf(vi * ib2) + eps) + wd * p[i]);
  }
}
