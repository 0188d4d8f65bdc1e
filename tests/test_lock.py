"""requirements.lock matches pyproject.toml, pins every package with hashes, and is what the
Dockerfile installs (offline: nothing is resolved here; `make lock` rewrites the file)."""

from __future__ import annotations

import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.lockfile import LOCK, ROOT, dependencies, digest, recorded_digest

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", re.M)


def _pins(text: str) -> dict[str, Version]:
    return {canonicalize_name(m.group(1)): Version(m.group(2)) for m in _PIN.finditer(text)}


def test_the_lock_was_compiled_from_the_current_dependencies() -> None:
    text = LOCK.read_text()
    assert recorded_digest(text) == digest(), (
        "pyproject.toml's dependencies changed since requirements.lock was written: run "
        "`make lock` and commit the new requirements.lock")


def test_every_dependency_is_pinned_within_its_range_with_hashes() -> None:
    text = LOCK.read_text()
    pins = _pins(text)
    for spec in dependencies():
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), \
            f"{req.name}=={pins[name]} is outside {req.specifier}"
    # Extras the product relies on are locked too (celery[redis] -> redis, psycopg[binary]).
    assert "psycopg-binary" in pins
    assert "redis" in pins
    entries = [e for e in re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 3)[3]) if e.strip()]
    assert len(entries) == len(pins)
    for entry in entries:
        assert "--hash=sha256:" in entry, f"no hash: {entry.splitlines()[0]}"


def test_the_dockerfile_installs_from_the_lock_with_hashes() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock" in dockerfile
    assert re.search(r"pip install [^\n]*--require-hashes[^\n]*-r requirements\.lock", dockerfile)
    # The project itself on top, without resolving anything again.
    assert "pip install --no-deps -e ." in dockerfile
    assert "requirements.lock" not in (ROOT / ".dockerignore").read_text().split()
