#!/usr/bin/env python3
"""Time the reference runtime (onnxruntime, CPU) on the sentences of
crates/tts-models/benches/piper.rs, with the same thread count and scales, so the Rust bench can
be stated as a ratio. Phoneme ids come from our own front end's conventions via piper_phonemize
when installed (pip install piper-phonemize==1.1.0), else the espeak-ng CLI.

    python3 tools/piper_reference_bench.py --threads 2
"""
import argparse
import json
import pathlib
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.dont_write_bytecode = True
from piper_goldens import piper_ids  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Keep in sync with crates/tts-models/benches/piper.rs.
SENTENCES = [
    ("short", "Hello world."),
    ("medium", "The quick brown fox jumps over the lazy dog, then it rests; happily!"),
    ("long", "Piper voices are small and fast, so a single modest processor can read long passages aloud, "
             "such as this sentence, which keeps going with several clauses, commas, and careful pauses, "
             "before it finally reaches its period."),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/piper/en_US-joe-medium.onnx"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    cfg = json.load(open(args.model + ".json"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    # Prior noise on, duration noise off: the same frame counts as the Rust bench.
    scales = np.array([0.667, 1.0, 0.0], dtype=np.float32)
    results = {}
    for name, text in SENTENCES:
        ids, _, _ = piper_ids(text, cfg["espeak"]["voice"], cfg["phoneme_id_map"])
        feeds = {"input": ids[None, :], "input_lengths": np.array([len(ids)], dtype=np.int64), "scales": scales}
        audio = sess.run(None, feeds)[0]  # warm-up
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append(time.perf_counter() - t0)
        secs = audio.size / cfg["audio"]["sample_rate"]
        med = statistics.median(times)
        results[name] = {"ids": len(ids), "audio_s": round(secs, 3), "median_ms": round(med * 1e3, 2),
                         "min_ms": round(min(times) * 1e3, 2), "rtf": round(med / secs, 4)}
        print(f"{name:6} {len(ids):4d} ids {secs:6.2f} s audio  median {med*1e3:8.2f} ms  "
              f"min {min(times)*1e3:8.2f} ms  RTF {med/secs:.4f}")
    print(json.dumps({"onnxruntime": ort.__version__, "threads": args.threads, "results": results}))


if __name__ == "__main__":
    main()
