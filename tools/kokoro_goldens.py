#!/usr/bin/env python3
"""Golden tensors for the Kokoro parity tests, from onnxruntime on the int8 ONNX export.

Run by hand (CPU-heavy for a few seconds):

    python3 tools/kokoro_goldens.py [--models models/kokoro] [--out crates/tts-models/tests/data/kokoro]

For each case (fixed phoneme strings in Kokoro's vocabulary, so the goldens do not depend on
espeak) it writes `<case>.npz` (uncompressed, read by candle's `Tensor::read_npz`) with:
  ids         int64 [T]      token ids including the two pads
  style       f32 [256]      voice pack row pack[len(phonemes) - 1]
  raw_dur     f32 [T]        sigmoid(proj).sum() / speed before rounding
  durations   int64 [T]      rounded, clamped durations
  d_en        f32 [512, T]   bert_encoder output (transposed)
  f0, n       f32 [2F]       predictor F0 / energy curves
  asr         f32 [512, F]   aligned text features = decoder input
  audio       f32 [600 F]    the export's waveform
and, for the first case only (to stay under 3 MB), the generator internals:
  gen_in      f32 [512, 2F]  generator input (decode.3 output)
  conv_post   f32 [22, 120F+1] conv_post output = pre-iSTFT log-magnitude / phase
It also writes `weights_sample.npz`: slices and sums of dequantised tensors from the reference
extractor in shared/notes (kokoro_onnx_extract.py), to check the Rust loader bit for bit.
Intermediate tensors are exposed by adding them as extra graph outputs.
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

CASES = [
    # (name, voice, phonemes, speed)
    ("en_short", "jf_alpha", "hˈɛlO, wˈɜɹld!", 1.0),
    ("en_sentence", "jm_kumo", "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɑɡ.", 1.0),
    ("ja_sentence", "jf_nezumi", "koɲɲiʨiwa, kjoːwa ii teɴki desɯ ne.", 1.0),
]

TAPS = {
    "raw_dur": ("/encoder/Div_output_0", TensorProto.FLOAT),
    "durations": ("/encoder/Cast_output_0", TensorProto.INT64),
    "d_en": ("/encoder/bert_encoder/Add_output_0", TensorProto.FLOAT),
    "f0": ("/encoder/Squeeze_output_0", TensorProto.FLOAT),
    "n": ("/encoder/Squeeze_1_output_0", TensorProto.FLOAT),
    "asr": ("/encoder/MatMul_1_output_0", TensorProto.FLOAT),
    "gen_in": ("/decoder/decoder/decode.3/Div_4_output_0", TensorProto.FLOAT),
    "conv_post": ("/decoder/decoder/generator/conv_post/Conv_output_0", TensorProto.FLOAT),
}
FIRST_CASE_ONLY = {"gen_in", "conv_post"}

WEIGHT_SAMPLES = [
    "bert.embeddings.word_embeddings.weight",
    "bert.encoder.albert_layer_groups.0.albert_layers.0.attention.query.weight",
    "bert.encoder.albert_layer_groups.0.albert_layers.0.ffn.bias",
    "text_encoder.cnn.0.0.weight",
    "text_encoder.lstm.weight_ih_l0",
    "text_encoder.lstm.weight_hh_l0_reverse",
    "text_encoder.lstm.bias_hh_l0",
    "predictor.text_encoder.lstms.1.fc.weight",
    "predictor.F0.1.pool.weight",
    "predictor.N_proj.weight",
    "decoder.asr_res.0.weight",
    "decoder.generator.ups.0.weight",
    "decoder.generator.m_source.l_linear.weight",
    "decoder.generator.resblocks.4.convs1.2.weight",
    "decoder.generator.noise_res.1.alpha2.0",
]


def main():
    ap = argparse.ArgumentParser()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--models", default=os.path.join(root, "models", "kokoro"))
    ap.add_argument("--out", default=os.path.join(root, "crates", "tts-models", "tests", "data", "kokoro"))
    ap.add_argument("--notes", default=os.path.join(os.path.dirname(root), "shared", "notes"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    vocab = __import__("json").load(open(os.path.join(a.models, "vocab.json")))["vocab"]
    voices = np.load(os.path.join(a.models, "voices_ja.npz"))
    path = os.path.join(a.models, "kokoro-v1.0.int8.onnx")
    model = onnx.load(path)
    for _, (tensor, dtype) in TAPS.items():
        model.graph.output.append(helper.make_tensor_value_info(tensor, dtype, None))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = ["audio"] + [t for t, _ in TAPS.values()]

    for i, (case, voice, phonemes, speed) in enumerate(CASES):
        ids = [vocab[p] for p in phonemes if p in vocab]
        style = voices[voice][len(ids) - 1].reshape(1, 256).astype(np.float32)
        tokens = np.array([[0, *ids, 0]], dtype=np.int64)
        outs = sess.run(names, {"tokens": tokens, "style": style, "speed": np.array([speed], np.float32)})
        res = dict(zip(["audio"] + list(TAPS), outs))
        rec = {
            "ids": tokens[0],
            "style": style[0],
            "speed": np.array([speed], np.float32),
            "audio": res["audio"].reshape(-1).astype(np.float32),
            "raw_dur": res["raw_dur"].reshape(-1).astype(np.float32),
            "durations": res["durations"].reshape(-1).astype(np.int64),
            "d_en": res["d_en"][0].T.astype(np.float32),
            "f0": res["f0"].reshape(-1).astype(np.float32),
            "n": res["n"].reshape(-1).astype(np.float32),
            "asr": res["asr"][0].astype(np.float32),
        }
        if i == 0:
            for k in FIRST_CASE_ONLY:
                rec[k] = res[k][0].astype(np.float32)
        np.savez(os.path.join(a.out, f"{case}.npz"), **{k: np.ascontiguousarray(v) for k, v in rec.items()})
        frames = int(rec["durations"].sum())
        print(f"{case}: voice={voice} T={tokens.shape[1]} frames={frames} audio={rec['audio'].size} "
              f"({rec['audio'].size / 24000:.2f}s) peak={np.abs(rec['audio']).max():.3f}")

    sys.path.insert(0, a.notes)
    import kokoro_onnx_extract as kx  # noqa: E402  (reference extractor, shared notes)
    tensors, _, _ = kx.extract(path, verbose=False)
    samples = {"count": np.array([len(tensors)], np.int64)}
    for name in WEIGHT_SAMPLES:
        w = tensors[name]
        samples[f"{name}.head"] = w.reshape(-1)[:64].astype(np.float32)
        samples[f"{name}.sum"] = np.array([w.astype(np.float64).sum()], np.float64)
        samples[f"{name}.shape"] = np.array(w.shape, np.int64)
    np.savez(os.path.join(a.out, "weights_sample.npz"), **samples)
    total = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
    print(f"wrote {a.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
