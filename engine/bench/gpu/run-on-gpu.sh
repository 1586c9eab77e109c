#!/usr/bin/env bash
# NormLab's webgpu bench and its PyTorch twin on one GPU machine, in one command.
#
# Made for a Linux x64 GPU machine with python3 + PyTorch (CUDA) but no Node, no npm and no
# network. Run it from the folder `npm run pack:gpu` wrote (dist-gpu/: the bundle's .tar.xz, an xz
# of Node, the Vulkan loader .deb files, this script):
#
#   OUT=/some/dir bash run-on-gpu.sh
#
# It unpacks Node and the bundle into $NORMLAB_GPU_WORK (default /tmp/normlab-gpu), uses the
# machine's Vulkan loader or else the carried one, points Vulkan at the NVIDIA driver's ICD, and
# writes to $OUT:
#   env.txt                  GPU, driver, Vulkan ICD and library paths used
#   backends.json            `normlab backends --json` (which backends load, which adapter)
#   normlab-webgpu.json      `normlab --backend webgpu bench --json` (rows: see engine/bench/)
#   torch.json               the PyTorch twin (engine/bench/torch_lm_step.py), fp32, TF32 off, for
#                            the bench model and GPT-2 small, explicit attention and SDPA: one
#                            result (or null) per "<model>-<attn>" key
#   summary.json             the headline numbers and ratios
#   run-on-gpu.log           what happened, step by step
# A step that fails is logged and the others still run. Six files in all: the device tool brings
# back at most eight from $OUT.
#
# Settings (environment):
#   TORCH_DEVICE     cuda (default) or cpu (a dry run without a GPU)
#   PYTHON           the Python with PyTorch (default: python3 on the PATH)
#   NORMLAB_BENCH_QUICK=1  `bench --quick` and a small GPT-2 (dry runs)
#   GPT2_SEQ, GPT2_BATCH   GPT-2 small's training shape for both sides (default 1024 and 4)
#   CPU_LM_TOKENS    NormLab's CPU tokens/s for the bench model, to report the GPU/CPU ratio
#   VK_ICD_FILENAMES kept when set (e.g. SwiftShader's, for a dry run)
#   STEP_TIMEOUT     seconds each step may take (default 300)
#   NORMLAB_BENCH_ROWS  the bench rows (default: every row but rss_flat, a 1,000-step leak check)
#   USE_CARRIED_VULKAN=1  use the carried Vulkan loader even where the machine has one
set -u -o pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${OUT:-$HERE/out}"
WORK="${NORMLAB_GPU_WORK:-/tmp/normlab-gpu}"
TORCH_DEVICE="${TORCH_DEVICE:-cuda}"
QUICK="${NORMLAB_BENCH_QUICK:-0}"
if [ "$QUICK" = 1 ]; then GPT2_SEQ_DEFAULT=64 GPT2_BATCH_DEFAULT=1; else GPT2_SEQ_DEFAULT=1024 GPT2_BATCH_DEFAULT=4; fi
GPT2_SEQ="${GPT2_SEQ:-$GPT2_SEQ_DEFAULT}"
GPT2_BATCH="${GPT2_BATCH:-$GPT2_BATCH_DEFAULT}"
STEP_TIMEOUT="${STEP_TIMEOUT:-300}"
mkdir -p "$OUT" "$WORK"
rm -f "$WORK"/torch-*.json # a twin that fails this time must not report an earlier result
LOG="$OUT/run-on-gpu.log"
: >"$LOG"
log() { echo "run-on-gpu: $*" | tee -a "$LOG" >&2; }
PY="${PYTHON:-$(command -v python3 || command -v python || true)}"

# --- Node ----------------------------------------------------------------------------------------
NODE_XZ="$(ls "$HERE"/node-v*-linux-x64.xz 2>/dev/null | head -1)"
NODE="$WORK/bin/node"
if [ -z "$NODE_XZ" ]; then log "no node-v*-linux-x64.xz beside this script"; exit 1; fi
mkdir -p "$WORK/bin"
if command -v xz >/dev/null; then
  xz -dc "$NODE_XZ" >"$NODE"
elif [ -n "$PY" ]; then
  "$PY" -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$NODE_XZ" "$NODE"
else
  log "neither xz nor python3 to unpack Node"; exit 1
fi
chmod +x "$NODE"
log "node $("$NODE" --version) from $(basename "$NODE_XZ")"

# --- the bundle ----------------------------------------------------------------------------------
BUNDLE_TAR="$(ls "$HERE"/normlab-*-linux-x64.tar.xz 2>/dev/null | head -1)"
if [ -z "$BUNDLE_TAR" ]; then log "no normlab-*-linux-x64.tar.xz beside this script"; exit 1; fi
rm -rf "$WORK/normlab"
if tar -C "$WORK" -xJf "$BUNDLE_TAR" 2>>"$LOG"; then :; else
  # tar without xz support: let Python's tarfile read it
  "$PY" -c 'import tarfile,sys; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$BUNDLE_TAR" "$WORK" || { log "cannot unpack $BUNDLE_TAR"; exit 1; }
fi
NORMLAB="$WORK/normlab/normlab.mjs"
log "bundle $(basename "$BUNDLE_TAR") unpacked in $WORK/normlab"

# --- carried .deb files: unpacked, used only where the machine lacks them --------------------------
extract_deb() { # $1 deb, $2 destination
  mkdir -p "$2"
  if command -v dpkg-deb >/dev/null; then dpkg-deb -x "$1" "$2" && return 0; fi
  # A .deb is an ar archive holding data.tar.*; Python reads both (xz and gz members).
  "$PY" - "$1" "$2" <<'PYEOF'
import io, sys, tarfile
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"!<arch>\n", "not a .deb"
pos = 8
while pos < len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/")
    size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    if name.startswith("data.tar"):
        tarfile.open(fileobj=io.BytesIO(body)).extractall(sys.argv[2])
    pos += 60 + size + (size & 1)
PYEOF
}
DEBROOT="$WORK/debs"
rm -rf "$DEBROOT"
for deb in "$HERE"/debs/*.deb; do [ -e "$deb" ] && extract_deb "$deb" "$DEBROOT" 2>>"$LOG"; done
CARRIED_LIB="$DEBROOT/usr/lib/x86_64-linux-gnu"

has_lib() { ldconfig -p 2>/dev/null | grep -q "$1" || [ -e "/usr/lib/x86_64-linux-gnu/$1" ] || [ -e "/lib/x86_64-linux-gnu/$1" ] || [ -e "/usr/lib64/$1" ]; }
NODE_LIBS=""
if [ "${USE_CARRIED_VULKAN:-0}" != 1 ] && has_lib libvulkan.so.1; then
  log "Vulkan loader: the machine's"
else
  # Only the loader goes on the path: a directory holding the carried libstdc++ too would shadow
  # the machine's (and could be older than what PyTorch or the driver need).
  mkdir -p "$WORK/vulkan-loader"
  cp -a "$CARRIED_LIB"/libvulkan.so.1* "$WORK/vulkan-loader/" 2>>"$LOG" && NODE_LIBS="$WORK/vulkan-loader"
  log "Vulkan loader: carried ($(ls "$WORK/vulkan-loader" 2>/dev/null | tr '\n' ' '))"
fi
# The NVIDIA driver's Vulkan library (libGLX_nvidia) links to glvnd's dispatch libraries; a
# container may mount the driver without them. Each one the machine lacks is taken from the debs.
for lib in libGLdispatch.so.0 libGLX.so.0 libEGL.so.1; do
  if ! has_lib "$lib" && [ -e "$CARRIED_LIB/$lib" ]; then
    mkdir -p "$WORK/glvnd" && cp -a "$CARRIED_LIB/$lib"* "$WORK/glvnd/"
    log "$lib: carried"
  fi
done
[ -d "$WORK/glvnd" ] && NODE_LIBS="${NODE_LIBS:+$NODE_LIBS:}$WORK/glvnd"
# dawn.node needs GLIBCXX_3.4.30 (GCC 12's libstdc++); an older system one is replaced, for Node only.
SYS_STDCXX="$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}')"
if [ -n "$SYS_STDCXX" ] && ! grep -q GLIBCXX_3.4.30 "$SYS_STDCXX" 2>/dev/null; then
  mkdir -p "$WORK/stdcxx" && cp -a "$CARRIED_LIB"/libstdc++.so.6* "$WORK/stdcxx/" && NODE_LIBS="${NODE_LIBS:+$NODE_LIBS:}$WORK/stdcxx"
  log "libstdc++: carried (the machine's $SYS_STDCXX lacks GLIBCXX_3.4.30)"
fi

# --- the NVIDIA Vulkan driver (ICD) --------------------------------------------------------------
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  for f in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.x86_64.json; do
    if [ -e "$f" ]; then export VK_ICD_FILENAMES="$f"; break; fi
  done
fi
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  # No ICD file, but the driver's Vulkan library may be there (containers often mount it without
  # the JSON): describe it ourselves.
  for lib in /usr/local/nvidia/lib64/libGLX_nvidia.so.0 /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/lib64/libGLX_nvidia.so.0 \
    /usr/local/nvidia/lib64/libEGL_nvidia.so.0 /usr/lib/x86_64-linux-gnu/libEGL_nvidia.so.0; do
    if [ -e "$lib" ]; then
      printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >"$WORK/nvidia_icd.json"
      export VK_ICD_FILENAMES="$WORK/nvidia_icd.json"
      log "wrote $WORK/nvidia_icd.json for $lib"
      break
    fi
  done
fi
if [ -z "${VK_ICD_FILENAMES:-}" ]; then
  log "no NVIDIA Vulkan driver found (no nvidia_icd.json, no libGLX_nvidia.so.0): in a container the driver's 'graphics' capability must be mounted (NVIDIA_DRIVER_CAPABILITIES=compute,utility,graphics); webgpu will not load, the PyTorch twin still runs"
fi
# Loaders from Vulkan SDK 1.3.234 on read VK_DRIVER_FILES; older ones VK_ICD_FILENAMES.
[ -n "${VK_ICD_FILENAMES:-}" ] && export VK_DRIVER_FILES="${VK_DRIVER_FILES:-$VK_ICD_FILENAMES}"
# What the ICD's library cannot resolve, for the log (a missing library is the usual reason the
# adapter does not appear).
if [ -n "${VK_ICD_FILENAMES:-}" ] && [ -e "$VK_ICD_FILENAMES" ]; then
  ICD_LIB="$(sed -n 's/.*"library_path" *: *"\([^"]*\)".*/\1/p' "$VK_ICD_FILENAMES" | head -1)"
  case "$ICD_LIB" in /*) ;; *) ICD_LIB="$(ldconfig -p 2>/dev/null | awk -v l="$ICD_LIB" '$1 == l {print $NF; exit}')" ;; esac
  if [ -n "$ICD_LIB" ] && [ -e "$ICD_LIB" ]; then
    missing="$(LD_LIBRARY_PATH="${NODE_LIBS:+$NODE_LIBS:}${LD_LIBRARY_PATH:-}" ldd "$ICD_LIB" 2>&1 | grep 'not found' | tr -s ' \t\n' ' ')"
    log "ICD library $ICD_LIB${missing:+: unresolved $missing}"
  fi
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$WORK/xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(uname -srm)"
  echo "gpu: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not available')"
  echo "VK_ICD_FILENAMES: ${VK_ICD_FILENAMES:-}"
  [ -n "${VK_ICD_FILENAMES:-}" ] && [ -e "$VK_ICD_FILENAMES" ] && echo "icd: $(tr -d '\n' <"$VK_ICD_FILENAMES")"
  echo "node library path: ${NODE_LIBS:-(system)}"
  echo "python: ${PY:-none} $("${PY:-false}" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
} >"$OUT/env.txt"
cat "$OUT/env.txt" >>"$LOG"

# --- NormLab on webgpu ---------------------------------------------------------------------------
normlab() { # normlab <output file> <args...>: stdout to the file, stderr to the log
  local out="$1"
  shift
  LD_LIBRARY_PATH="${NODE_LIBS:+$NODE_LIBS:}${LD_LIBRARY_PATH:-}" timeout "$STEP_TIMEOUT" "$NODE" "$NORMLAB" "$@" >"$out" 2>>"$LOG"
}
log "normlab backends --json"
normlab "$OUT/backends.json" backends --json || log "backends failed (exit $?)"
export NORMLAB_BENCH_ROWS="${NORMLAB_BENCH_ROWS:-lm_train,gpt2_small_train,gpt2_small_train_stock_kernels,matmul_gflops,gpt2_small_forward,vit_forward,lct_step,ptq_calibration}"
BENCH_ARGS=(--backend webgpu bench --json)
[ "$QUICK" = 1 ] && BENCH_ARGS+=(--quick)
log "normlab ${BENCH_ARGS[*]} (rows $NORMLAB_BENCH_ROWS; GPT-2 small at seq $GPT2_SEQ, batch $GPT2_BATCH)"
NORMLAB_GPT2_SEQ="$GPT2_SEQ" NORMLAB_GPT2_BATCH="$GPT2_BATCH" normlab "$OUT/normlab-webgpu.json" "${BENCH_ARGS[@]}" || log "webgpu bench failed (exit $?)"

# --- the PyTorch twin ----------------------------------------------------------------------------
TWIN="$WORK/normlab/engine/bench/torch_lm_step.py"
torch_twin() { # torch_twin <name> <args...>
  local name="$1"
  shift
  log "PyTorch twin $name on $TORCH_DEVICE: $*"
  timeout "$STEP_TIMEOUT" "$PY" "$TWIN" --device "$TORCH_DEVICE" "$@" >"$WORK/torch-$name.json" 2>>"$LOG" || log "PyTorch twin $name failed (exit $?)"
}
if [ -z "$PY" ]; then
  log "no python3: the PyTorch twin is skipped"
else
  steps=$([ "$QUICK" = 1 ] && echo 2 || echo 20)
  torch_twin bench-explicit --steps "$steps" --warmup 2
  torch_twin bench-sdpa --steps "$steps" --warmup 2 --sdpa 1
  torch_twin gpt2-explicit --gpt2 1 --seq "$GPT2_SEQ" --batch "$GPT2_BATCH" --steps "$([ "$QUICK" = 1 ] && echo 1 || echo 10)" --warmup 1
  torch_twin gpt2-sdpa --gpt2 1 --seq "$GPT2_SEQ" --batch "$GPT2_BATCH" --steps "$([ "$QUICK" = 1 ] && echo 1 || echo 10)" --warmup 1 --sdpa 1
fi

# --- summary -------------------------------------------------------------------------------------
log "summary"
LD_LIBRARY_PATH="${NODE_LIBS:+$NODE_LIBS:}${LD_LIBRARY_PATH:-}" CPU_LM_TOKENS="${CPU_LM_TOKENS:-}" "$NODE" --input-type=module -e '
import fs from "node:fs";
const [dir, work] = process.argv.slice(1);
const read = (f) => { try { const t = fs.readFileSync(f, "utf8").trim(); return t ? JSON.parse(t.split("\n").pop()) : null; } catch { return null; } };
const bench = read(`${dir}/normlab-webgpu.json`);
const row = (n) => bench?.rows?.find((r) => r.backend === "webgpu" && r.name === n) ?? null;
const torch = Object.fromEntries(["bench-explicit", "bench-sdpa", "gpt2-explicit", "gpt2-sdpa"].map((n) => [n, read(`${work}/torch-${n}.json`)]));
fs.writeFileSync(`${dir}/torch.json`, JSON.stringify(torch, null, 2) + "\n");
const best = (a, b) => Math.max(a?.tokens_per_s ?? 0, b?.tokens_per_s ?? 0) || null;
const ratio = (x, y) => (x && y ? x / y : null);
const lm = row("lm_train")?.value ?? null, gpt2 = row("gpt2_small_train")?.value ?? null;
const cpu = Number(process.env.CPU_LM_TOKENS) || null;
const summary = {
  adapter: /webgpu on .*/.exec(row("lm_train")?.detail ?? "")?.[0] ?? bench?.rows?.find((r) => r.name === "load")?.note ?? null,
  webgpu: { lm_train_tokens_per_s: lm, gpt2_small_train_tokens_per_s: gpt2, matmul_gflops: row("matmul_gflops")?.value ?? null },
  torch: { bench_tokens_per_s: best(torch["bench-explicit"], torch["bench-sdpa"]), gpt2_tokens_per_s: best(torch["gpt2-explicit"], torch["gpt2-sdpa"]), device: torch["gpt2-explicit"]?.device ?? torch["bench-explicit"]?.device ?? null },
};
summary.gpt2_vs_torch = ratio(gpt2, summary.torch.gpt2_tokens_per_s);
summary.lm_vs_torch = ratio(lm, summary.torch.bench_tokens_per_s);
summary.lm_vs_cpu = ratio(lm, cpu);
fs.writeFileSync(`${dir}/summary.json`, JSON.stringify(summary, null, 2) + "\n");
console.log(JSON.stringify(summary));
' "$OUT" "$WORK" 2>>"$LOG" | tee -a "$LOG"
log "done: $OUT"
