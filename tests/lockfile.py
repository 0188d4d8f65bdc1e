"""requirements.lock: the image's exact, hashed dependencies, compiled from pyproject.toml.

``make lock`` (``python -m tests.lockfile``) recompiles it with uv for the image's platform
(CPython 3.11, Linux x86_64; every file's hash is kept, so other architectures verify too) and
writes a digest of pyproject's dependency list in its header. tests/test_lock.py fails when the
two disagree, so a dependency change without a new lock does not reach an image.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
DIGEST_PREFIX = "# pyproject-dependencies-sha256: "


def dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [str(d) for d in project["dependencies"]]


def digest() -> str:
    canonical = json.dumps(sorted(d.replace(" ", "") for d in dependencies()))
    return hashlib.sha256(canonical.encode()).hexdigest()


def recorded_digest(text: str) -> str | None:
    for line in text.splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line.removeprefix(DIGEST_PREFIX).strip()
    return None


def write() -> None:
    body = subprocess.run(
        [sys.executable, "-m", "uv", "pip", "compile", str(ROOT / "pyproject.toml"),
         "--python-version", "3.11", "--python-platform", "x86_64-unknown-linux-gnu",
         "--generate-hashes", "--no-header", "--quiet"],
        check=True, capture_output=True, text=True, cwd=ROOT,
    ).stdout
    header = (
        "# The image's dependencies, exact and hashed (Dockerfile: pip install --require-hashes).\n"
        "# Written by `make lock` from pyproject.toml; do not edit. tests/test_lock.py checks it.\n"
        f"{DIGEST_PREFIX}{digest()}\n"
    )
    LOCK.write_text(header + body)


if __name__ == "__main__":
    write()
    print(f"wrote {LOCK.relative_to(ROOT)}")
