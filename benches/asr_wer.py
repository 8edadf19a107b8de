#!/usr/bin/env python3
"""Word error rate of speech clips against their text, with PocketSphinx's bundled US English
model: an intelligibility check for cloned voices (`clone_eval --wer`), not an accuracy claim
about the recogniser. Needs `pip install pocketsphinx` (5.x ships its model).

    benches/asr_wer.py "reference text" clip1.wav [clip2.wav ...]

Prints one line per clip: `<path>\t<wer>\t<hypothesis>`. Clips must be 16 kHz mono 16-bit WAV.
"""

import re
import sys
import wave


def words(text):
    return re.sub(r"[^a-z' ]+", " ", text.lower()).split()


def edit_distance(ref, hyp):
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)]


def transcribe(decoder, path):
    with wave.open(path, "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (16000, 1, 2):
            sys.exit(f"{path}: need 16 kHz mono 16-bit WAV")
        audio = wav.readframes(wav.getnframes())
    decoder.start_utt()
    decoder.process_raw(audio, full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr if decoder.hyp() else ""


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, loglevel="FATAL")
    reference = words(sys.argv[1])
    for path in sys.argv[2:]:
        hypothesis = transcribe(decoder, path)
        wer = edit_distance(reference, words(hypothesis)) / max(len(reference), 1)
        print(f"{path}\t{wer:.3f}\t{hypothesis}")


if __name__ == "__main__":
    main()
