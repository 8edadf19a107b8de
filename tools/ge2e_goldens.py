#!/usr/bin/env python3
"""Write golden tensors for the GE2E speaker-encoder parity test from the reference itself.

Reference: Resemblyzer 0.1.4 (`resemblyzer.VoiceEncoder`, `resemblyzer.preprocess_wav`) on torch (CPU),
with librosa 0.11 (mel) and py-webrtcvad 2.0.10 (silence trimming), loading the same
`models/speaker/resemblyzer-ge2e.pt` the Rust encoder loads. Run by hand:

    python3 -m venv /tmp/ge2e-venv
    /tmp/ge2e-venv/bin/pip install torch resemblyzer librosa "setuptools<70"   # webrtcvad imports pkg_resources
    /tmp/ge2e-venv/bin/python tools/ge2e_goldens.py --make-clips   # clips from our Piper/Kokoro and espeak-ng

`--make-clips` (re)creates the inputs: 16 kHz 16-bit mono WAVs made by `tts-server synth`
(target/release) and the `espeak-ng` CLI + sox. Without it the existing clips are reused.

For each clip `<name>.wav` under crates/tts-speaker/tests/data/ge2e/ it stores:
  <name>_mel.npy       f32 [F,40]     mel spectrogram of the zero-padded waveform (wav_to_mel_spectrogram)
  <name>_partials.npy  f32 [P,256]    partial-utterance embeddings (embed_utterance return_partials)
  <name>_embed.npy     f32 [256]      utterance embedding
and goldens.json with provenance, the partial slices, the 30 ms windows the VAD kept and the RMS of
the preprocessed waveform (instead of the waveform itself, to keep the data small).
"""
import argparse
import json
import pathlib
import subprocess

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "crates/tts-speaker/tests/data/ge2e"
WEIGHTS = ROOT / "models/speaker/resemblyzer-ge2e.pt"

CLIPS = {
    # Piper joe (a speaker none of the Kokoro packs contains).
    "joe": ("synth", "en_US-joe-medium", "The quick brown fox jumps over the lazy dog. Then it runs home."),
    # espeak-ng formant voice with a variant.
    "espeak_f3": ("espeak", "en-us+f3", "Please call Stella. Ask her to bring these things from the store."),
    # A stock Kokoro voice.
    "kokoro_jf_alpha": ("synth", "jf_alpha", "She sells sea shells by the sea shore."),
}


def make_clip(name, kind, voice, text):
    wav = OUT / f"{name}.wav"
    if kind == "synth":
        subprocess.run(
            [str(ROOT / "target/release/tts-server"), "synth", "--models-dir", str(ROOT / "models"),
             "--voice", voice, "--text", text, "--out", str(wav), "--sample-rate", "16000"],
            check=True, capture_output=True,
        )
    else:
        raw = OUT / f"{name}.raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-b", "16", str(wav)], check=True)
        raw.unlink()


def read_wav16(path):
    """16-bit PCM → float32 / 32768, the conversion the Rust test's decoder uses."""
    import wave

    with wave.open(str(path)) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def kept_windows(normalised, trimmed, window=480):
    """Indices of the 30 ms windows of `normalised` that trim_long_silences kept, in order."""
    kept, j = [], 0
    for i in range(len(normalised) // window):
        chunk = normalised[i * window:(i + 1) * window]
        if j < len(trimmed) and np.array_equal(chunk, trimmed[j:j + window]):
            kept.append(i)
            j += window
    assert j == len(trimmed), "trimmed audio is not a subsequence of whole windows"
    return kept


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--make-clips", action="store_true")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.make_clips:
        for name, spec in CLIPS.items():
            make_clip(name, *spec)

    import librosa
    import resemblyzer
    import torch
    from resemblyzer import VoiceEncoder, audio, preprocess_wav

    enc = VoiceEncoder("cpu", verbose=False, weights_fpath=WEIGHTS)
    meta = {
        "reference": f"resemblyzer {getattr(resemblyzer, '__version__', '0.1.4')}, torch {torch.__version__}, "
        f"librosa {librosa.__version__}, numpy {np.__version__}",
        "clips": {},
    }
    for name, (kind, voice, text) in CLIPS.items():
        x = read_wav16(OUT / f"{name}.wav")
        # The clip is already 16 kHz, so no resampling: the test checks the front end, not a resampler.
        wav = preprocess_wav(x)
        embed, partials, wav_slices = enc.embed_utterance(wav, return_partials=True)
        padded = wav
        if wav_slices[-1].stop >= len(wav):
            padded = np.pad(wav, (0, wav_slices[-1].stop - len(wav)), "constant")
        mel = audio.wav_to_mel_spectrogram(padded)
        kept = kept_windows(audio.normalize_volume(x, -30, increase_only=True), wav)
        np.save(OUT / f"{name}_mel.npy", np.ascontiguousarray(mel, dtype=np.float32))
        np.save(OUT / f"{name}_partials.npy", np.ascontiguousarray(partials, dtype=np.float32))
        np.save(OUT / f"{name}_embed.npy", embed.astype(np.float32))
        meta["clips"][name] = {
            "source": kind, "voice": voice, "text": text,
            "input_samples": int(len(x)), "preprocessed_samples": int(len(wav)),
            "kept_windows": kept,
            "preprocessed_rms": float(np.sqrt(np.mean(wav.astype(np.float64) ** 2))),
            "partial_starts": [int(s.start) // 160 for s in wav_slices],
        }
        print(name, len(x), "->", len(wav), "partials", len(partials))
    (OUT / "goldens.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    main()
