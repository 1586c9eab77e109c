/* NormLab's fused float32 kernels: each replaces a chain of tfjs ops in the training hot path
 * (engine/nn/ops.ts) with one pass over memory, split over the thread pool (pool.h). Arrays are
 * contiguous and row-major unless a layout says otherwise. */
#ifndef NORMLAB_KERNELS_H
#define NORMLAB_KERNELS_H
#include <stdint.h>

const char *kernels_simd(void);

/* GELU, exact form: y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); tanh form: GPT-2's approximation. */
void gelu_fwd(const float *x, float *y, int64_t n, int tanh_form);
/* dx = dy * d/dx gelu(x) */
void gelu_bwd(const float *x, const float *dy, float *dx, int64_t n, int tanh_form);

/* SwiGLU's gate (Shazeer 2020): y = silu(g) u with silu(g) = g sigmoid(g). */
void swiglu_fwd(const float *g, const float *u, float *y, int64_t n);
/* dg = dy u silu'(g), du = dy silu(g), with silu'(g) = s (1 + g (1 - s)), s = sigmoid(g). */
void swiglu_bwd(const float *g, const float *u, const float *dy, float *dg, float *du, int64_t n);

/* Rotary position embedding (Su et al. 2021) in HF's rotate-half form, y = x cos + rotate_half(x) sin
 * with rotate_half(x) = (-x[h:], x[:h]), h = hs / 2, for rows of length hs whose position is
 * row % T; cos and sin are (T, hs). The backward is the same map with the rotation reversed. */
void rope_fwd(const float *x, const float *cos, const float *sin, float *y, int64_t rows, int64_t T, int64_t hs);
void rope_bwd(const float *dy, const float *cos, const float *sin, float *dx, int64_t rows, int64_t T, int64_t hs);

/* LayerNorm over rows of length C (Ba et al. 2016): y = (x - mean) * rstd * gamma + beta, with
 * rstd = 1 / sqrt(var + eps). gamma/beta may be NULL (1 / 0). Saves mean and rstd per row.
 * rms != 0 gives RMSNorm (Zhang & Sennrich 2019): no centring, rstd = 1 / sqrt(mean(x^2) + eps). */
void norm_fwd(const float *x, const float *gamma, const float *beta, float *y, float *mean, float *rstd,
              int64_t rows, int64_t C, float eps, int rms);
/* dx, and dgamma / dbeta summed over rows (each may be NULL when not wanted). */
void norm_bwd(const float *x, const float *gamma, const float *mean, const float *rstd, const float *dy, float *dx,
              float *dgamma, float *dbeta, int64_t rows, int64_t C, int rms);

/* Where one operand's (T, hs) matrix for batch b and head h lies: at b * sb + h * sh, rows ld apart.
 * Heads-major (B, H, T, hs): sb = H T hs, sh = T hs, ld = hs. Token-major (B, T, H hs): sb = T H hs,
 * sh = hs, ld = H hs; q, k, v packed as (B, T, 3 H hs): the same with ld = 3 H hs. */
typedef struct {
  int64_t sb, sh, ld;
} head_layout;

typedef struct {
  int64_t B, H, T, Tk, hs;
  int causal;
  head_layout q, k, v, o; /* gradients use their operand's layout */
} attn_shape;

/* Scaled dot-product attention (Vaswani et al. 2017, eq. 1), softmax(q k^T * scale + causal mask) v,
 * per batch and head. Saves the probabilities, contiguous (B, H, T, Tk). */
void attention_fwd(const float *q, const float *k, const float *v, float *out, float *probs, const attn_shape *s,
                   float scale);
/* dq, dk, dv (each written whole, so they may be column blocks of one packed gradient). */
void attention_bwd(const float *q, const float *k, const float *v, const float *probs, const float *dout, float *dq,
                   float *dk, float *dv, const attn_shape *s, float scale);

/* Token cross-entropy: loss[i] = logsumexp(logits[i]) - logits[i, target[i]]; saves the row's
 * logsumexp. Targets outside [0, V) give NaN. */
void xent_fwd(const float *logits, const int32_t *targets, float *loss, float *lse, int64_t N, int64_t V);
/* dlogits[i] = (softmax(logits[i]) - onehot(target[i])) * dloss[i] */
void xent_bwd(const float *logits, const int32_t *targets, const float *lse, const float *dloss, float *dlogits,
              int64_t N, int64_t V);

/* One AdamW step (Loshchilov & Hutter 2019, Alg. 2) into new arrays:
 * m' = b1 m + (1-b1) g; v' = b2 v + (1-b2) g^2; p' = p - lr (m'/bc1 / (sqrt(v'/bc2) + eps) + wd p). */
void adamw(const float *p, const float *g, const float *m, const float *v, float *p_out, float *m_out, float *v_out,
           int64_t n, float lr, float b1, float b2, float eps, float wd, float bc1, float bc2);

#endif
