#!/usr/bin/env python3
"""Reference readings from misaki's Japanese front end (the `cutlet` path Kokoro's Japanese voices
were trained on), written to crates/tts-text/tests/data/ja_misaki.json for the agreement test
`crates/tts-text/tests/japanese_misaki.rs`. Run by hand; nothing in the product uses Python.

misaki's `ja` extra pulls `unidic` (which downloads its dictionary at run time) and `pyopenjtalk`;
the cutlet path only needs fugashi + a bundled UniDic, so install exactly this into a venv:

    python3 -m venv /tmp/ja-venv
    /tmp/ja-venv/bin/pip install misaki==0.9.4 fugashi jaconv mojimoji unidic-lite==1.0.8
    /tmp/ja-venv/bin/python tools/ja_goldens.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SENTENCES = [
    "今日はいい天気ですね。東京へ行きます。",
    "私は学校へ行って、本を読みました。",
    "りんごが3個あります。",
    "日本語の音声合成は難しいですか？",
    "「こんにちは」と言った。",
    "ちょっと待って！本当？",
    "コンピューターを使います。",
    "吾輩は猫である。名前はまだ無い。",
    "葉が落ちる。",
    "駅までどのくらいかかりますか？",
    "明日の会議は午後から始まります。",
    "この料理はとても美味しいです。",
    "電車が遅れているので、少し遅くなります。",
    "新しいスマートフォンを買いました。",
    "彼は毎朝公園を走っています。",
    "窓を開けてもいいですか？",
    "お誕生日おめでとうございます！",
    "雨が降りそうなので、傘を持って行きましょう。",
    "日本の夏はとても暑いです。",
    "先生に質問があります。",
    "図書館で静かに勉強しました。",
    "ありがとうございました。またお越しください。",
    "富士山はとても高い山です。",
    "週末は家族と一緒に映画を見ます。",
    "すみません、トイレはどこですか？",
    "この問題について、もう一度考えてみましょう。",
    "京都には古いお寺がたくさんあります。",
    "彼女はピアノを弾くのが上手です。",
    "猫が好きですか、それとも犬が好きですか？",
    "遠くから花火の音が聞こえてきた。",
]


def main() -> int:
    try:
        from misaki.cutlet import Cutlet
    except ImportError as e:
        print(f"error: {e}; see this script's docstring for the venv", file=sys.stderr)
        return 1
    cutlet = Cutlet()
    out = [{"text": t, "misaki": cutlet(t)[0]} for t in SENTENCES]
    root = Path(__file__).resolve().parent.parent
    target = root / "crates/tts-text/tests/data/ja_misaki.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(out)} readings to {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
