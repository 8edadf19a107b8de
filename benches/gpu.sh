#!/usr/bin/env bash
# GPU benchmark of the prebuilt CUDA tts-server: RTF and time to first audio (TTFA) for Kokoro
# and Piper at one stream, throughput at 1/4/16/64 concurrent streams, and VRAM from nvidia-smi.
# Prints a markdown table last and writes it, with the raw logs, under $OUT (or ./gpu-results).
#
# The GPU machine needs no Rust and no network, only the NVIDIA driver, the CUDA 13 user-space
# libraries (cuBLAS, cuRAND, NVRTC, cudart: a CUDA runtime image or PyTorch's `nvidia-*` wheels,
# found below), espeak-ng data and libopus. Carry over:
#   1. the binaries, built on a dev machine:
#        scripts/cuda-check build                       # → ~/.cache/tts-cuda/target-sm90/release/tts-server
#        cargo build --release -p tts-load              # → target/release/tts-load (CPU only)
#      and copied into one folder, e.g. benches/gpu-bin/ (git-ignored), passed as TTS_GPU_BIN;
#   2. the weights under one models folder (TTS_MODELS_DIR). With a transfer limit per call
#      (64 MiB on the lent machines), split the 92 MB Kokoro file (`split -b 45M`), send one
#      piece per call, append them on the machine into a staging folder that outlives the call
#      (`cat piece >> /root/stage/models/kokoro/kokoro-v1.0.int8.onnx`), check the sha256 after the
#      last piece, then run this script in the final call with TTS_MODELS_DIR=/root/stage/models.
#
# Usage: TTS_GPU_BIN=benches/gpu-bin TTS_MODELS_DIR=/root/stage/models benches/gpu.sh
# Optional: TTS_DEVICE [cuda:0], TTS_DTYPE [f32], TTS_WORKERS [4], TTS_BENCH_REQUESTS [4 per
# stream], TTS_BENCH_LEVELS [1,4,16,64], TTS_BENCH_PORT [8089].
#
# The server has no dynamic batching yet: each worker thread runs one sentence at a time on the
# shared GPU, so "batch N" here is N concurrent streams, served by TTS_WORKERS workers.
set -euo pipefail

bin="${TTS_GPU_BIN:-$(dirname "$0")/gpu-bin}"
models="${TTS_MODELS_DIR:-models}"
out="${OUT:-$PWD/gpu-results}"
device="${TTS_DEVICE:-cuda:0}"
dtype="${TTS_DTYPE:-f32}"
workers="${TTS_WORKERS:-4}"
requests="${TTS_BENCH_REQUESTS:-4}"
levels="${TTS_BENCH_LEVELS:-1,4,16,64}"
port="${TTS_BENCH_PORT:-8089}"
url="http://127.0.0.1:$port"
mkdir -p "$out"

for tool in tts-server tts-load; do
    [[ -x "$bin/$tool" ]] || { echo "missing $bin/$tool (see the header of $0)" >&2; exit 2; }
done
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: not a GPU machine?" >&2; exit 2; }

# CUDA user-space libraries from Python's nvidia-* wheels when the system has none.
if python3 -c "import nvidia" 2>/dev/null; then
    site=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))")
    libs=$(find "$site/nvidia" -maxdepth 3 -type d -name lib | tr '\n' ':')
    export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
fi

gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1)
vram() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1; }
idle_mib=$(vram)
echo "GPU: $gpu; idle memory.used ${idle_mib} MiB" | tee "$out/gpu.txt"

# Kokoro's voices here are Japanese (voices_ja.npz); Piper's joe is English. ~10 words each.
kokoro_voice="${TTS_KOKORO_VOICE:-jf_alpha}"
kokoro_text="${TTS_KOKORO_TEXT:-きょうは とても いい てんきですね。 えきまで いっしょに あるいて いきましょう。}"
piper_voice="${TTS_PIPER_VOICE:-en_US-joe-medium}"
piper_text="${TTS_PIPER_TEXT:-The bus leaves at six forty five, so please do not be late today.}"

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

"$bin/tts-server" serve --bind "127.0.0.1:$port" --models-dir "$models" \
    --storage-dir "$out/storage" --device "$device" --dtype "$dtype" --workers "$workers" \
    --queue-capacity 512 >"$out/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
    curl -fsS "$url/ready" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { tail -20 "$out/server.log" >&2; exit 1; }
    sleep 0.5
done
curl -fsS "$url/ready" >/dev/null || { echo "server not ready after 300 s" >&2; exit 1; }
loaded_mib=$(vram)

# Peak VRAM over the whole load test, sampled every 200 ms.
nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/vram-samples.txt" &
sampler=$!

run_load() { # name voice text
    "$bin/tts-load" --url "$url" --voice "$2" --text "$3" --concurrency "$levels" \
        --requests-per-client "$requests" | tee "$out/load-$1.md"
}
run_load kokoro "$kokoro_voice" "$kokoro_text"
run_load piper "$piper_voice" "$piper_text"
kill "$sampler" 2>/dev/null || true
peak_mib=$(sort -n "$out/vram-samples.txt" | tail -1)
stop_server

# Rows of tts-load's table: | streams | requests | TTFA p50 | p95 | p99 | latency p50 | req/s | audio s/s |
column() { awk -F'|' -v c="$2" -v n="$3" '$2+0 == n && NF > 8 { gsub(/ /, "", $(c+1)); print $(c+1) }' "$out/load-$1.md"; }
{
    echo "## GPU benchmark, $(date -u +%Y-%m-%d)"
    echo
    echo "GPU: $gpu. Device $device, dtype $dtype, $workers workers, no dynamic batching (N streams = N concurrent requests)."
    echo "VRAM (nvidia-smi memory.used): idle ${idle_mib} MiB, models loaded ${loaded_mib} MiB, peak under load ${peak_mib} MiB."
    echo
    echo "| model | TTFA p50 ms (1 stream) | RTF (1 stream) | x real time @1 | @4 | @16 | @64 |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    for model in kokoro piper; do
        ttfa=$(column "$model" 3 1)
        x1=$(column "$model" 8 1)
        rtf=$(awk -v x="$x1" 'BEGIN { if (x > 0) printf "%.4f", 1 / x; else print "n/a" }')
        echo "| $model | $ttfa | $rtf | $x1 | $(column "$model" 8 4) | $(column "$model" 8 16) | $(column "$model" 8 64) |"
    done
    echo
    echo "x real time = seconds of audio produced per wall second, all streams together (tts-load's last column)."
    echo "Command: TTS_DEVICE=$device TTS_DTYPE=$dtype TTS_WORKERS=$workers benches/gpu.sh"
} | tee "$out/gpu-results.md"
