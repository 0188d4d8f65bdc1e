"""`make demo`'s last step: each demo tenant's access review, fetched over the API as a tenant
would, written next to the demo's data."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console


def write_demo_reports(
    api_url: str, tenants: Iterable[Any], out_dir: Path, console: Console
) -> list[Path]:
    """For each tenant (anything with ``name`` and ``key``): its report page and CSV under
    ``out_dir``; prints where they are and returns the paths."""
    with httpx.Client(base_url=api_url, timeout=120) as client:
        return write_reports(client, tenants, out_dir, console)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "tenant"


def write_reports(
    client: httpx.Client, tenants: Iterable[Any], out_dir: Path, console: Console
) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    console.print("[bold]Access reviews[/] (open the .html in a browser):")
    for tenant in tenants:
        paths = []
        for fmt in ("html", "csv"):
            response = client.get("/v1/reports/access-review", params={"format": fmt},
                                  headers={"X-API-Key": tenant.key})
            response.raise_for_status()
            path = out_dir / f"{_slug(tenant.name)}-access-review.{fmt}"
            path.write_bytes(response.content)
            paths.append(path)
        written += paths
        console.print(f"  {tenant.name:<10} {paths[0]}  (CSV: {paths[1].name})")
    return written
