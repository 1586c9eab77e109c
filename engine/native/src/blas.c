#define _GNU_SOURCE
#include "blas.h"
#include "pool.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

enum { CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112 };
typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);
typedef char *(*str_fn)(void);
typedef void (*set_threads_fn)(int);

static sgemm_fn cblas_sgemm;
static set_threads_fn set_threads;
static char description[256];
static char error[512];
static int state; /* 0 untried, 1 loaded, -1 failed */

int blas_load(void) {
  if (state) return state > 0 ? 0 : -1;
  /* NORMLAB_BLAS names another OpenBLAS build; otherwise the distribution's (Debian: libopenblas0). */
  const char *names[] = {getenv("NORMLAB_BLAS"), "libopenblas.so.0", "libopenblas.so", "libopenblas.dylib"};
  void *lib = NULL;
  for (size_t i = 0; i < sizeof names / sizeof *names && !lib; i++)
    if (names[i] && *names[i]) lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    snprintf(error, sizeof error, "OpenBLAS not found (%s)", dlerror());
    state = -1;
    return -1;
  }
  cblas_sgemm = (sgemm_fn)dlsym(lib, "cblas_sgemm");
  set_threads = (set_threads_fn)dlsym(lib, "openblas_set_num_threads");
  str_fn config = (str_fn)dlsym(lib, "openblas_get_config");
  str_fn corename = (str_fn)dlsym(lib, "openblas_get_corename");
  if (!cblas_sgemm) {
    snprintf(error, sizeof error, "the BLAS library has no cblas_sgemm");
    state = -1;
    return -1;
  }
  snprintf(description, sizeof description, "%s (%s)", config ? config() : "OpenBLAS", corename ? corename() : "?");
  state = 1;
  return 0;
}

const char *blas_error(void) { return error; }
const char *blas_describe(void) { return description; }

void blas_set_threads(int n) {
  if (set_threads) set_threads(n);
}

void blas_sgemm(int trans_a, int trans_b, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K, 1.0f,
              a, lda, b, ldb, beta, c, ldc);
}

/* One gemm of a batch, or a band of rows (columns) of a single one, per pool part. */
typedef struct {
  int ta, tb, M, N, K, batch, split_rows, band;
  const float *a, *b;
  float *c;
  long sa, sb, sc;
} gemm_job;

static void gemm_part(void *ctx, int part) {
  const gemm_job *j = ctx;
  const int lda = j->ta ? j->M : j->K, ldb = j->tb ? j->K : j->N;
  if (j->batch > 1) { /* parts split the batch */
    const int per = (j->batch + j->band - 1) / j->band, i0 = part * per, i1 = i0 + per < j->batch ? i0 + per : j->batch;
    for (int i = i0; i < i1; i++)
      blas_sgemm(j->ta, j->tb, j->M, j->N, j->K, j->a + i * j->sa, lda, j->b + i * j->sb, ldb, 0.0f, j->c + i * j->sc, j->N);
    return;
  }
  const int total = j->split_rows ? j->M : j->N, lo = part * j->band, n = lo + j->band < total ? j->band : total - lo;
  if (n <= 0) return;
  if (j->split_rows) /* rows [lo, lo + n) of C: rows of op(A) */
    blas_sgemm(j->ta, j->tb, n, j->N, j->K, j->a + (j->ta ? lo : (long)lo * lda), lda, j->b, ldb, 0.0f,
               j->c + (long)lo * j->N, j->N);
  else /* columns [lo, lo + n) of C: columns of op(B) */
    blas_sgemm(j->ta, j->tb, j->M, n, j->K, j->a, lda, j->b + (j->tb ? (long)lo * ldb : lo), ldb, 0.0f, j->c + lo, j->N);
}

/* Products below this many multiply-adds stay on one thread (a hand-off costs ~10 us). */
#define MIN_PARALLEL_MACS (1L << 20)

void blas_sgemm_batch(int trans_a, int trans_b, int M, int N, int K, const float *a, long stride_a,
                      const float *b, long stride_b, float *c, long stride_c, int batch) {
  const int threads = pool_threads();
  gemm_job j = {trans_a, trans_b, M, N, K, batch, 0, 0, a, b, c, stride_a, stride_b, stride_c};
  if (threads > 1 && (long)M * N * K * batch >= MIN_PARALLEL_MACS) {
    if (batch > 1) {
      j.band = batch < threads ? batch : threads;
      pool_run(gemm_part, &j, j.band);
      return;
    }
    j.split_rows = M >= N;
    const int total = j.split_rows ? M : N, align = j.split_rows ? 4 : 16;
    j.band = ((total + threads - 1) / threads + align - 1) / align * align;
    pool_run(gemm_part, &j, (total + j.band - 1) / j.band);
    return;
  }
  const int lda = trans_a ? M : K, ldb = trans_b ? K : N;
  for (int i = 0; i < batch; i++)
    blas_sgemm(trans_a, trans_b, M, N, K, a + i * stride_a, lda, b + i * stride_b, ldb, 0.0f, c + i * stride_c, N);
}
