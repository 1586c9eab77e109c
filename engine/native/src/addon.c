/* N-API entry points of NormLab's native kernels. Every kernel works in place on the tfjs wasm
 * backend's heap: JS passes the heap as a Float32Array plus element offsets of each operand, so no
 * tensor data is copied in or out. Each entry point checks that every range it touches lies inside
 * the heap, so a wrong offset throws instead of writing outside it. */
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>

#include "blas.h"
#include "kernels.h"
#include "pool.h"

#define MAX_ARGS 16

typedef struct {
  napi_env env;
  size_t argc;
  napi_value argv[MAX_ARGS];
  float *heap;
  size_t heap_len;
  int failed;
} call_t;

static void fail(call_t *c, const char *msg) {
  if (!c->failed) napi_throw_error(c->env, "NORMLAB_NATIVE", msg);
  c->failed = 1;
}

/* Reads argv[0] as the heap (a Float32Array) and checks the argument count. */
static int begin(call_t *c, napi_env env, napi_callback_info info, size_t want) {
  c->env = env;
  c->argc = MAX_ARGS;
  c->failed = 0;
  napi_get_cb_info(env, info, &c->argc, c->argv, NULL, NULL);
  if (c->argc != want) {
    char msg[96];
    snprintf(msg, sizeof msg, "native kernel expects %zu arguments, got %zu", want, c->argc);
    fail(c, msg);
    return 0;
  }
  napi_typedarray_type type;
  void *data;
  if (napi_get_typedarray_info(env, c->argv[0], &type, &c->heap_len, &data, NULL, NULL) != napi_ok ||
      type != napi_float32_array) {
    fail(c, "native kernel: argument 0 must be the heap as a Float32Array");
    return 0;
  }
  c->heap = (float *)data;
  return 1;
}

static int64_t arg_int(call_t *c, size_t i) {
  int64_t v = 0;
  if (!c->failed && napi_get_value_int64(c->env, c->argv[i], &v) != napi_ok) fail(c, "native kernel: expected a number");
  return v;
}

static double arg_num(call_t *c, size_t i) {
  double v = 0;
  if (!c->failed && napi_get_value_double(c->env, c->argv[i], &v) != napi_ok) fail(c, "native kernel: expected a number");
  return v;
}

/* The heap range [off, off + len) as a pointer, or NULL (and an exception) if it leaves the heap. */
static float *range(call_t *c, int64_t off, int64_t len) {
  if (c->failed) return NULL;
  if (off < 0 || len < 0 || (uint64_t)(off + len) > c->heap_len) {
    fail(c, "native kernel: operand outside the wasm heap");
    return NULL;
  }
  return c->heap + off;
}

/* Extent of `batch` operands of `size` floats placed `stride` apart (stride 0: one shared operand). */
static int64_t extent(int64_t batch, int64_t stride, int64_t size) { return batch > 0 ? (batch - 1) * stride + size : 0; }

static napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* gemm(heap, transA, transB, M, N, K, a, strideA, b, strideB, c, strideC, batch):
 * C[i] = op(A[i]) op(B[i]) for i < batch, row-major, C (M, N). */
static napi_value js_gemm(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 13)) return NULL;
  int ta = (int)arg_int(&c, 1), tb = (int)arg_int(&c, 2);
  int64_t M = arg_int(&c, 3), N = arg_int(&c, 4), K = arg_int(&c, 5);
  int64_t sa = arg_int(&c, 7), sb = arg_int(&c, 9), sc = arg_int(&c, 11), batch = arg_int(&c, 12);
  float *a = range(&c, arg_int(&c, 6), extent(batch, sa, M * K));
  float *b = range(&c, arg_int(&c, 8), extent(batch, sb, K * N));
  float *out = range(&c, arg_int(&c, 10), extent(batch, sc, M * N));
  if (c.failed) return NULL;
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) {
    fail(&c, "native gemm: dimension too large");
    return NULL;
  }
  blas_sgemm_batch(ta, tb, (int)M, (int)N, (int)K, a, sa, b, sb, out, sc, (int)batch);
  return undefined(env);
}

static napi_value js_set_blas_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t n = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc == 1) napi_get_value_int32(env, argv[0], &n);
  blas_set_threads(n < 1 ? 1 : n);
  return undefined(env);
}

/* setThreads(n): the kernels' own thread pool (n - 1 workers besides the caller); returns n. */
static napi_value js_set_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  int32_t n = 1;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc == 1) napi_get_value_int32(env, argv[0], &n);
  pool_set_threads(n);
  napi_create_int32(env, pool_threads(), &out);
  return out;
}

/* info() -> { blas: string | null, blasError: string | null, simd: string } */
static napi_value js_info(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value obj, v, nul;
  napi_create_object(env, &obj);
  napi_get_null(env, &nul);
  int ok = blas_load() == 0;
  if (ok) napi_create_string_utf8(env, blas_describe(), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "blas", ok ? v : nul);
  if (!ok) napi_create_string_utf8(env, blas_error(), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "blasError", ok ? nul : v);
  napi_create_string_utf8(env, kernels_simd(), NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, obj, "simd", v);
  return obj;
}


/* An optional operand: offset -1 means none (NULL). */
static float *opt_range(call_t *c, size_t i, int64_t len) {
  const int64_t off = arg_int(c, i);
  return off == -1 ? NULL : range(c, off, len);
}

/* geluFwd(heap, x, y, n, tanhForm) */
static napi_value js_gelu_fwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 5)) return NULL;
  const int64_t n = arg_int(&c, 3);
  const float *x = range(&c, arg_int(&c, 1), n);
  float *y = range(&c, arg_int(&c, 2), n);
  const int tanh_form = (int)arg_int(&c, 4);
  if (c.failed) return NULL;
  gelu_fwd(x, y, n, tanh_form);
  return undefined(env);
}

/* geluBwd(heap, x, dy, dx, n, tanhForm) */
static napi_value js_gelu_bwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 6)) return NULL;
  const int64_t n = arg_int(&c, 4);
  const float *x = range(&c, arg_int(&c, 1), n), *dy = range(&c, arg_int(&c, 2), n);
  float *dx = range(&c, arg_int(&c, 3), n);
  const int tanh_form = (int)arg_int(&c, 5);
  if (c.failed) return NULL;
  gelu_bwd(x, dy, dx, n, tanh_form);
  return undefined(env);
}

/* swigluFwd(heap, g, u, y, n) */
static napi_value js_swiglu_fwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 5)) return NULL;
  const int64_t n = arg_int(&c, 4);
  const float *g = range(&c, arg_int(&c, 1), n), *u = range(&c, arg_int(&c, 2), n);
  float *y = range(&c, arg_int(&c, 3), n);
  if (c.failed) return NULL;
  swiglu_fwd(g, u, y, n);
  return undefined(env);
}

/* swigluBwd(heap, g, u, dy, dg, du, n) */
static napi_value js_swiglu_bwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 7)) return NULL;
  const int64_t n = arg_int(&c, 6);
  const float *g = range(&c, arg_int(&c, 1), n), *u = range(&c, arg_int(&c, 2), n), *dy = range(&c, arg_int(&c, 3), n);
  float *dg = range(&c, arg_int(&c, 4), n), *du = range(&c, arg_int(&c, 5), n);
  if (c.failed) return NULL;
  swiglu_bwd(g, u, dy, dg, du, n);
  return undefined(env);
}

/* ropeFwd(heap, x, cos, sin, y, rows, T, hs, backward): backward = 1 maps dy to dx */
static napi_value js_rope(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 9)) return NULL;
  const int64_t rows = arg_int(&c, 5), T = arg_int(&c, 6), hs = arg_int(&c, 7);
  if (!c.failed && (T < 1 || hs < 2 || hs % 2)) {
    fail(&c, "native rope: T must be positive and the head size even");
    return NULL;
  }
  const float *x = range(&c, arg_int(&c, 1), rows * hs);
  const float *cos = range(&c, arg_int(&c, 2), T * hs), *sin = range(&c, arg_int(&c, 3), T * hs);
  float *y = range(&c, arg_int(&c, 4), rows * hs);
  const int backward = (int)arg_int(&c, 8);
  if (c.failed) return NULL;
  (backward ? rope_bwd : rope_fwd)(x, cos, sin, y, rows, T, hs);
  return undefined(env);
}

/* normFwd(heap, x, gamma|-1, beta|-1, y, mean, rstd, rows, C, eps, rms) */
static napi_value js_norm_fwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 11)) return NULL;
  const int64_t rows = arg_int(&c, 7), C = arg_int(&c, 8);
  const float *x = range(&c, arg_int(&c, 1), rows * C);
  const float *gamma = opt_range(&c, 2, C), *beta = opt_range(&c, 3, C);
  float *y = range(&c, arg_int(&c, 4), rows * C), *mean = range(&c, arg_int(&c, 5), rows);
  float *rstd = range(&c, arg_int(&c, 6), rows);
  const float eps = (float)arg_num(&c, 9);
  const int rms = (int)arg_int(&c, 10);
  if (c.failed) return NULL;
  norm_fwd(x, gamma, beta, y, mean, rstd, rows, C, eps, rms);
  return undefined(env);
}

/* normBwd(heap, x, gamma|-1, mean, rstd, dy, dx, dgamma|-1, dbeta|-1, rows, C, rms) */
static napi_value js_norm_bwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 12)) return NULL;
  const int64_t rows = arg_int(&c, 9), C = arg_int(&c, 10);
  const float *x = range(&c, arg_int(&c, 1), rows * C), *gamma = opt_range(&c, 2, C);
  const float *mean = range(&c, arg_int(&c, 3), rows), *rstd = range(&c, arg_int(&c, 4), rows);
  const float *dy = range(&c, arg_int(&c, 5), rows * C);
  float *dx = range(&c, arg_int(&c, 6), rows * C), *dgamma = opt_range(&c, 7, C), *dbeta = opt_range(&c, 8, C);
  const int rms = (int)arg_int(&c, 11);
  if (c.failed) return NULL;
  norm_bwd(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, C, rms);
  return undefined(env);
}

/* Reads the attention shape from an Int32Array [B, H, T, Tk, hs, causal, then sb, sh, ld for q, k, v
 * and out], and checks each operand's whole extent against the heap. */
static int attn_shape_arg(call_t *c, size_t i, attn_shape *s) {
  napi_typedarray_type type;
  size_t len;
  void *data;
  if (c->failed) return 0;
  if (napi_get_typedarray_info(c->env, c->argv[i], &type, &len, &data, NULL, NULL) != napi_ok || type != napi_int32_array ||
      len != 18) {
    fail(c, "native attention: the shape must be an Int32Array of 18");
    return 0;
  }
  const int32_t *d = data;
  *s = (attn_shape){d[0], d[1], d[2], d[3], d[4], d[5], {d[6], d[7], d[8]}, {d[9], d[10], d[11]}, {d[12], d[13], d[14]},
                    {d[15], d[16], d[17]}};
  if (s->B < 1 || s->H < 1 || s->T < 1 || s->Tk < 1 || s->hs < 1) {
    fail(c, "native attention: every size must be positive");
    return 0;
  }
  return 1;
}

/* Floats spanned by one operand of `rows` rows under a layout. */
static int64_t attn_extent(const attn_shape *s, const head_layout *l, int64_t rows) {
  return (s->B - 1) * l->sb + (s->H - 1) * l->sh + (rows - 1) * l->ld + s->hs;
}

/* attentionFwd(heap, q, k, v, out, probs, shape: Int32Array(18), scale) */
static napi_value js_attention_fwd(napi_env env, napi_callback_info info) {
  call_t c;
  attn_shape s;
  if (!begin(&c, env, info, 8) || !attn_shape_arg(&c, 6, &s)) return NULL;
  const float *q = range(&c, arg_int(&c, 1), attn_extent(&s, &s.q, s.T));
  const float *k = range(&c, arg_int(&c, 2), attn_extent(&s, &s.k, s.Tk));
  const float *v = range(&c, arg_int(&c, 3), attn_extent(&s, &s.v, s.Tk));
  float *out = range(&c, arg_int(&c, 4), attn_extent(&s, &s.o, s.T));
  float *probs = range(&c, arg_int(&c, 5), s.B * s.H * s.T * s.Tk);
  const float scale = (float)arg_num(&c, 7);
  if (c.failed) return NULL;
  if (!(scale > 0.0f)) {
    fail(&c, "native attention: the scale must be positive");
    return NULL;
  }
  attention_fwd(q, k, v, out, probs, &s, scale);
  return undefined(env);
}

/* attentionBwd(heap, q, k, v, probs, dout, dq, dk, dv, shape: Int32Array(18), scale) */
static napi_value js_attention_bwd(napi_env env, napi_callback_info info) {
  call_t c;
  attn_shape s;
  if (!begin(&c, env, info, 11) || !attn_shape_arg(&c, 9, &s)) return NULL;
  const float *q = range(&c, arg_int(&c, 1), attn_extent(&s, &s.q, s.T));
  const float *k = range(&c, arg_int(&c, 2), attn_extent(&s, &s.k, s.Tk));
  const float *v = range(&c, arg_int(&c, 3), attn_extent(&s, &s.v, s.Tk));
  const float *probs = range(&c, arg_int(&c, 4), s.B * s.H * s.T * s.Tk);
  const float *dout = range(&c, arg_int(&c, 5), attn_extent(&s, &s.o, s.T));
  float *dq = range(&c, arg_int(&c, 6), attn_extent(&s, &s.q, s.T));
  float *dk = range(&c, arg_int(&c, 7), attn_extent(&s, &s.k, s.Tk));
  float *dv = range(&c, arg_int(&c, 8), attn_extent(&s, &s.v, s.Tk));
  const float scale = (float)arg_num(&c, 10);
  if (c.failed) return NULL;
  attention_bwd(q, k, v, probs, dout, dq, dk, dv, &s, scale);
  return undefined(env);
}

/* xentFwd(heap, logits, targets (int32 at a float offset), loss, lse, N, V) */
static napi_value js_xent_fwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 7)) return NULL;
  const int64_t N = arg_int(&c, 5), V = arg_int(&c, 6);
  const float *logits = range(&c, arg_int(&c, 1), N * V);
  const int32_t *targets = (const int32_t *)range(&c, arg_int(&c, 2), N);
  float *loss = range(&c, arg_int(&c, 3), N), *lse = range(&c, arg_int(&c, 4), N);
  if (c.failed) return NULL;
  xent_fwd(logits, targets, loss, lse, N, V);
  return undefined(env);
}

/* xentBwd(heap, logits, targets, lse, dloss, dlogits, N, V) */
static napi_value js_xent_bwd(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 8)) return NULL;
  const int64_t N = arg_int(&c, 6), V = arg_int(&c, 7);
  const float *logits = range(&c, arg_int(&c, 1), N * V);
  const int32_t *targets = (const int32_t *)range(&c, arg_int(&c, 2), N);
  const float *lse = range(&c, arg_int(&c, 3), N), *dloss = range(&c, arg_int(&c, 4), N);
  float *dlogits = range(&c, arg_int(&c, 5), N * V);
  if (c.failed) return NULL;
  xent_bwd(logits, targets, lse, dloss, dlogits, N, V);
  return undefined(env);
}

/* adamw(heap, p, g, m, v, pOut, mOut, vOut, n, [lr, b1, b2, eps, wd, bc1, bc2] as a Float64Array) */
static napi_value js_adamw(napi_env env, napi_callback_info info) {
  call_t c;
  if (!begin(&c, env, info, 10)) return NULL;
  const int64_t n = arg_int(&c, 8);
  const float *p = range(&c, arg_int(&c, 1), n), *g = range(&c, arg_int(&c, 2), n);
  const float *m = range(&c, arg_int(&c, 3), n), *v = range(&c, arg_int(&c, 4), n);
  float *po = range(&c, arg_int(&c, 5), n), *mo = range(&c, arg_int(&c, 6), n), *vo = range(&c, arg_int(&c, 7), n);
  if (c.failed) return NULL;
  napi_typedarray_type type;
  size_t len;
  void *data;
  if (napi_get_typedarray_info(env, c.argv[9], &type, &len, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || len != 7) {
    fail(&c, "native adamw: hyper-parameters must be a Float64Array of 7");
    return NULL;
  }
  const double *h = data;
  adamw(p, g, m, v, po, mo, vo, n, (float)h[0], (float)h[1], (float)h[2], (float)h[3], (float)h[4], (float)h[5],
        (float)h[6]);
  return undefined(env);
}

#define FN(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default, NULL}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      FN("info", js_info),
      FN("setBlasThreads", js_set_blas_threads),
      FN("setThreads", js_set_threads),
      FN("gemm", js_gemm),
      FN("geluFwd", js_gelu_fwd),
      FN("geluBwd", js_gelu_bwd),
      FN("swigluFwd", js_swiglu_fwd),
      FN("swigluBwd", js_swiglu_bwd),
      FN("rope", js_rope),
      FN("normFwd", js_norm_fwd),
      FN("normBwd", js_norm_bwd),
      FN("attentionFwd", js_attention_fwd),
      FN("attentionBwd", js_attention_bwd),
      FN("xentFwd", js_xent_fwd),
      FN("xentBwd", js_xent_bwd),
      FN("adamw", js_adamw),
  };
  napi_define_properties(env, exports, sizeof props / sizeof *props, props);
  return exports;
}
