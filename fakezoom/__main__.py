"""`python -m fakezoom --port 9000 --accounts 3 --users 500 --days 30 [--plan pro] ...`

Starts the fake on 127.0.0.1 and prints every account's credentials; `--json-out FILE` also
writes them as JSON (written once the port is bound, so a parent process can poll for it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from fakezoom.config import AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.core import FakeZoom
from fakezoom.server import FakeZoomServer


def build_config(args: argparse.Namespace) -> FakeZoomConfig:
    raw: dict[str, Any] = json.loads(Path(args.config).read_text()) if args.config else {}
    config = FakeZoomConfig.from_dict(raw)
    if args.seed is not None:
        config.seed = args.seed
    if args.plan:
        config.plan = args.plan
    if args.rate_scale is not None:
        config.rate_scale = args.rate_scale
    if args.no_rate_limits:
        config.rate_limits_enabled = False
    if args.accounts is not None or "accounts" not in raw:
        scopes = args.scopes.split() if args.scopes else None
        template = config.accounts[0] if config.accounts else AccountSpec()
        accounts = []
        for _ in range(args.accounts or 1):
            spec = AccountSpec(**{k: getattr(template, k) for k in template.__dataclass_fields__
                                  if k != "apps"})
            spec.apps = [AppSpec(kind="s2s"), AppSpec(kind="general")]
            if scopes:
                for app in spec.apps:
                    app.scopes = list(scopes)
            if args.users is not None:
                spec.users = args.users
            if args.days is not None:
                spec.days = args.days
            accounts.append(spec)
        config.accounts = accounts
    return config


def describe(server: FakeZoomServer) -> str:
    lines = [f"fakezoom listening on {server.base_url}",
             f"  OAuth token URL: {server.oauth_token_url}",
             f"  API base URL:    {server.api_url}",
             f"  admin:           {server.base_url}/_fake/stats", ""]
    for acc in server.fake.credentials():
        lines.append(f"account {acc['account_index']}: {acc['account_id']}  "
                     f"(plan {acc['plan']}, {acc['users']} users)")
        for app in acc["apps"]:
            lines.append(f"  {app['kind']} app {app['name']}: client_id={app['client_id']} "
                         f"client_secret={app['client_secret']}")
            if app.get("refresh_token"):
                lines.append(f"    refresh_token={app['refresh_token']}")
            lines.append(f"    scopes: {' '.join(app['scopes'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fakezoom", description=__doc__)
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--accounts", type=int)
    p.add_argument("--users", type=int)
    p.add_argument("--days", type=int)
    p.add_argument("--plan", choices=["free", "pro", "business"])
    p.add_argument("--seed", type=int)
    p.add_argument("--scopes", help="space-separated scopes granted to every app")
    p.add_argument("--rate-scale", type=float)
    p.add_argument("--no-rate-limits", action="store_true")
    p.add_argument("--config", help="JSON file with FakeZoomConfig fields")
    p.add_argument("--json-out", help="write the credentials as JSON to this file")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    fake = FakeZoom(build_config(args))
    server = FakeZoomServer(fake, host=args.host, port=args.port, log_level=args.log_level)
    if args.json_out:
        out = Path(args.json_out)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps({
            "base_url": server.base_url, "oauth_token_url": server.oauth_token_url,
            "api_url": server.api_url, "accounts": fake.credentials(),
        }, indent=2))
        tmp.replace(out)  # atomic, so a poller never reads half a file
    print(describe(server), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
