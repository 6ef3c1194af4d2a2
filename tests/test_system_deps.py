"""scripts/system-deps.sh: what `make test` and `make demo` do about missing Debian packages."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _fake_bin(folder: Path, *, uid: int) -> Path:
    """A PATH folder whose dpkg-query finds nothing installed and whose id says `uid`."""
    folder.mkdir()
    for name, body in (("dpkg-query", "exit 1"), ("id", f"echo {uid}")):
        script = folder / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return folder


def _run(tmp_path: Path, *packages: str) -> subprocess.CompletedProcess[str]:
    fake = _fake_bin(tmp_path / "bin", uid=1000)
    env = {**os.environ, "PATH": f"{fake}:/usr/bin:/bin"}
    return subprocess.run(["bash", str(REPO / "scripts" / "system-deps.sh"), *packages],
                          env=env, capture_output=True, text=True)


def test_without_root_the_exact_apt_get_line_for_the_demos_packages_is_printed(tmp_path):
    result = _run(tmp_path, "tesseract-ocr", "tesseract-ocr-eng")
    assert result.returncode == 1
    assert ("sudo apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng"
            in result.stderr)
    assert "chromium" not in result.stderr


def test_by_default_it_checks_the_packages_the_tests_need(tmp_path):
    result = _run(tmp_path)
    assert "tesseract-ocr tesseract-ocr-eng chromium" in result.stderr


def test_make_demo_goes_on_without_tesseract():
    demo = (REPO / "scripts" / "demo.sh").read_text()
    assert "scripts/system-deps.sh tesseract-ocr tesseract-ocr-eng \\\n  || echo" in demo
