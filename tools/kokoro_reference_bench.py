#!/usr/bin/env python3
"""Times onnxruntime (2 threads) on the int8 Kokoro export for the inputs of
`crates/tts-models/benches/kokoro.rs`, end to end (model forward only, no G2P).

    python3 tools/kokoro_reference_bench.py [--models models/kokoro] [--reps 5]

Prints median ms per input and the real-time factor; run it right before or after
`cargo bench -p tts-models --bench kokoro -- kokoro_end_to_end` on the same machine and divide.
"""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort

INPUTS = [
    ("short", "jf_alpha", "hˈɛlO, wˈɜɹld!"),
    ("medium", "jm_kumo", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ."),
    ("long", "jf_alpha",
     "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ. wˌI dˈʌz ðə sˈʌn ʃˈIn? bɪkˈʌz ɪt ɪz hˈɑt, "
     "ænd ɪt ɪz vˈɛɹi fˈɑɹ əwˈA fɹʌm ˈʌs. ʃˈi sˈɛlz sˈiʃˌɛlz bˈI ðə sˈiʃˌɔɹ."),
]


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=os.path.join(root, "models", "kokoro"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    vocab = json.load(open(os.path.join(a.models, "vocab.json")))["vocab"]
    voices = np.load(os.path.join(a.models, "voices_ja.npz"))
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(a.models, "kokoro-v1.0.int8.onnx"), so,
                                providers=["CPUExecutionProvider"])
    for name, voice, ps in INPUTS:
        ids = [vocab[p] for p in ps if p in vocab]
        feed = {
            "tokens": np.array([[0, *ids, 0]], np.int64),
            "style": voices[voice][len(ids) - 1].reshape(1, 256).astype(np.float32),
            "speed": np.array([1.0], np.float32),
        }
        audio = sess.run(None, feed)[0]
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append(time.perf_counter() - t0)
        secs = audio.size / 24000
        med = float(np.median(times))
        print(f"{name}: {len(ids) + 2} tokens, {secs:.2f}s audio, median {med * 1000:.1f} ms "
              f"(min {min(times) * 1000:.1f}), {secs / med:.2f}x real time")


if __name__ == "__main__":
    main()
