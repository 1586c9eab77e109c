/* OpenBLAS, loaded at run time (dlopen) so that building NormLab's addon needs no BLAS headers
 * and a machine without OpenBLAS still loads the addon (the engine then keeps its wasm matmul). */
#ifndef NORMLAB_BLAS_H
#define NORMLAB_BLAS_H

/* Loads the library once; returns 0 on success, or -1 with the reason in blas_error(). */
int blas_load(void);
const char *blas_error(void);
/* OpenBLAS's build configuration and the core kernels it chose, e.g. "OpenBLAS 0.3.21 ... (SKYLAKEX)". */
const char *blas_describe(void);
void blas_set_threads(int n);

/* Row-major C = op(A) op(B) + beta C with leading dimensions (row strides) lda, ldb, ldc. */
void blas_sgemm(int trans_a, int trans_b, int M, int N, int K, const float *a, int lda, const float *b, int ldb,
                float beta, float *c, int ldc);

/* Row-major C[b] = op(A[b]) op(B[b]) for b < batch, C (M, N); operand b starts at base + b*stride. */
void blas_sgemm_batch(int trans_a, int trans_b, int M, int N, int K, const float *a, long stride_a,
                      const float *b, long stride_b, float *c, long stride_c, int batch);

#endif
