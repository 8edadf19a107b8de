#!/usr/bin/env python3
"""Write golden tensors for the Piper (VITS) parity tests from the reference runtime.

Run by hand (needs onnxruntime, onnx, numpy; optionally piper-phonemize):

    pip install piper-phonemize==1.1.0   # Piper's own phonemizer, bundles its espeak-ng fork
    python3 tools/piper_goldens.py

For each sentence it stores, under crates/tts-models/tests/data/piper/:
  s{i}_ids.npy        int64 [N]       phoneme ids as Piper computes them
  s{i}_enc_x.npy      f32 [1,C,N]     text-encoder output (input of enc_p.proj)
  s{i}_enc_stats.npy  f32 [1,2C',N]   enc_p.proj output (m_p ++ logs_p)
  s{i}_durations.npy  f32 [1,1,N]     ceil(exp(logw) * length_scale), frames per phoneme
  s{i}_z.npy          f32 [1,C',T]    flow output = decoder input
  s{i}_audio.npy      f32 [T*hop]     raw decoder output (before Piper's peak normalisation)
and goldens.json with the texts, phonemes, scales and provenance.
Noise scales are 0, so everything is deterministic.
"""
import argparse
import json
import pathlib
import subprocess
import unicodedata

import numpy as np
import onnx
import onnxruntime as ort

ROOT = pathlib.Path(__file__).resolve().parents[1]
SENTENCES = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog, then it rests; happily!",
    "Is this voice running natively in Rust?",
]


def piper_ids(text, voice, id_map):
    """Ids with Piper's own phonemizer when installed, else the espeak-ng CLI + Piper's rules."""
    try:
        import piper_phonemize

        sentences = piper_phonemize.phonemize_espeak(text, voice)
        source = "piper_phonemize " + getattr(piper_phonemize, "__version__", "1.1.0")
        phonemes = [p for s in sentences for p in s]
    except ImportError:
        ipa = subprocess.run(
            ["espeak-ng", "-q", "--ipa", "-v", voice, text], capture_output=True, text=True, check=True
        ).stdout.strip()
        phonemes = list(unicodedata.normalize("NFD", ipa))
        if text.rstrip()[-1:] in ".?!":
            phonemes.append(text.rstrip()[-1])
        source = "espeak-ng CLI (approximation of piper_phonemize)"
    ids = list(id_map["^"]) + list(id_map["_"])
    for p in phonemes:
        if p in id_map:
            ids += list(id_map[p]) + list(id_map["_"])
    ids += list(id_map["$"])
    return np.array(ids, dtype=np.int64), "".join(phonemes), source


def add_outputs(model, names):
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/piper/en_US-joe-medium.onnx"))
    ap.add_argument("--out", default=str(ROOT / "crates/tts-models/tests/data/piper"))
    args = ap.parse_args()
    cfg = json.load(open(args.model + ".json"))
    model = onnx.load(args.model)
    nodes = {n.name: n for n in model.graph.node}
    proj = nodes["/enc_p/proj/Conv"]
    ceil = next(n for n in model.graph.node if n.op_type == "Ceil")
    dec_in = nodes["/dec/conv_pre/Conv"].input[0]
    stages = {"enc_x": proj.input[0], "enc_stats": proj.output[0], "durations": ceil.output[0], "z": dec_in}
    add_outputs(model, stages.values())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scales = np.array([0.0, 1.0, 0.0], dtype=np.float32)  # noise_scale, length_scale, noise_w
    meta = {"model": pathlib.Path(args.model).name, "scales": scales.tolist(), "sentences": []}
    for i, text in enumerate(SENTENCES):
        ids, phonemes, source = piper_ids(text, cfg["espeak"]["voice"], cfg["phoneme_id_map"])
        feeds = {"input": ids[None, :], "input_lengths": np.array([len(ids)], dtype=np.int64), "scales": scales}
        if cfg["num_speakers"] > 1:
            feeds["sid"] = np.array([0], dtype=np.int64)
        res = sess.run(["output", *stages.values()], feeds)
        audio = res[0].reshape(-1).astype(np.float32)
        np.save(out / f"s{i}_ids.npy", ids)
        np.save(out / f"s{i}_audio.npy", audio)
        for key, value in zip(stages, res[1:]):
            np.save(out / f"s{i}_{key}.npy", value.astype(np.float32))
        meta["sentences"].append({"text": text, "phonemes": phonemes, "ids_source": source,
                                  "num_ids": len(ids), "num_samples": len(audio)})
        print(i, text, len(ids), "ids", len(audio), "samples", source)
    meta["onnxruntime"] = ort.__version__
    json.dump(meta, open(out / "goldens.json", "w"), ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
