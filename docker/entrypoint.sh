#!/bin/sh
# Container entrypoint: fetch the weights into $TTS_MODELS_DIR when asked and they are missing,
# then run tts-server with the given arguments (default `serve`).
set -eu
models="${TTS_MODELS_DIR:-/models}"
if [ "${TTS_FETCH_MODELS:-0}" = "1" ] && [ -z "$(ls -A "$models" 2>/dev/null)" ]; then
    echo "fetching models (${TTS_FETCH_GROUPS:-kokoro,piper}) into $models" >&2
    python3 /opt/tts/fetch_models.py --models-dir "$models" \
        --cache-dir "${TTS_ASSET_CACHE:-/var/lib/tts/storage/asset-cache}" \
        --only "${TTS_FETCH_GROUPS:-kokoro,piper}"
fi
exec /usr/local/bin/tts-server "$@"
