{
  "targets": [
    {
      "target_name": "normlab_native",
      "sources": ["src/addon.c", "src/blas.c", "src/kernels.c", "src/pool.c"],
      "cflags": ["-O3", "-std=c11", "-ffp-contract=fast", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "<!(node -p \"process.env.NORMLAB_NATIVE_ARCH_FLAG || '-O3'\")"],
      "libraries": ["-ldl", "-lm", "-lpthread"]
    }
  ]
}
