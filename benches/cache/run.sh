#!/usr/bin/env bash
# Cache-hit latency and throughput of POST /v1/tts on loopback (issue 9 target: p99 < 2 ms and
# >= 20,000 req/s for a ~50 KB MP3 on 2 cores). Starts a server on a temp storage dir, warms the
# entry once (a miss), checks its size and X-Cache, then runs wrk against the hit.
#
#   benches/cache/run.sh [path/to/tts-server]      (needs wrk: apt-get install -y wrk)
# Env: PORT (8099), DURATION (10s), CONNECTIONS (32), THREADS (2), SERVER_CPUS (cpu list for taskset, e.g. 0-1)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
server_bin="${1:-$root/target/release/tts-server}"
port="${PORT:-8099}"
storage="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$storage"' EXIT

# About 3 s of speech: ~50 KB at the default MP3 bitrate.
text="The quarterly report is ready, and revenue grew again."
body="$(printf '{"text":"%s","voice":"en_US-joe-medium","format":"mp3"}' "$text")"

launch=("$server_bin" serve --bind "127.0.0.1:$port" --models-dir "$root/models" --storage-dir "$storage")
if [[ -n "${SERVER_CPUS:-}" ]]; then launch=(taskset -c "$SERVER_CPUS" "${launch[@]}"); fi
RUST_LOG=warn "${launch[@]}" &
pid=$!
for _ in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.5
done

warm="$(curl -fs -D - -o "$storage/warm.mp3" -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/v1/tts")"
echo "$warm" | grep -i '^x-cache:'
hit="$(curl -fs -D - -o "$storage/hit.mp3" -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$port/v1/tts")"
echo "$hit" | grep -i '^x-cache:'
echo "$hit" | grep -qi '^x-cache: hit-memory' || { echo "second request was not a memory hit" >&2; exit 1; }
echo "entry size: $(stat -c %s "$storage/hit.mp3") bytes"

TTS_BENCH_BODY="$body" wrk -t "${THREADS:-2}" -c "${CONNECTIONS:-32}" -d "${DURATION:-10s}" \
  -s "$root/benches/cache/hit.lua" "http://127.0.0.1:$port/v1/tts"
curl -fs "http://127.0.0.1:$port/v1/cache/stats"; echo
