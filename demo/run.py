"""`make demo`: the real system in miniature, driven over HTTP the way a tenant admin would.

    python -m demo            # run, summarise, shut down (under a minute)
    python -m demo --serve    # ...then keep the API (/docs), Flower and fakezoom up

Nothing external is needed: a fresh SQLite file under demo-data/ for the database, fakeredis's
TCP server for broker, result backend, token cache, locks and rate limiter, fakezoom for Zoom.
The worker (two Celery workers, prefork), beat and the API run as separate processes with the
same launchers as production. DATABASE_URL / REDIS_URL, when set, are used instead.

Three tenants: one Server-to-Server app, one refresh-token app, one app missing a scope. The
admin creates tenants and keys, each tenant loads a few identities and adds its source, tests
the connection (the third fails with its plain-language message); a good first test makes the
worker aggregate, correlate and backfill 30 days of activity on its own. Then Zoom pushes a
sign-in of an idle account as a signed webhook, and the demo prints how soon the insights show
it (`demo/webhooks.py`).
"""

from __future__ import annotations

import argparse
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table

from api.reports.demo import write_demo_reports
from demo.stack import ROOT, Stack, StackConfig, StackError
from demo.webhooks import PushedSignIn, show_pushed_sign_in
from fakezoom.config import CLASSIC_SCOPES, AccountSpec, AppSpec, FakeZoomConfig
from fakezoom.core import FakeZoom
from fakezoom.server import FakeZoomServer
from worker.cli.ops import FINAL_RUN

PLAN: Final = "business"
MISSING_SCOPE = "report:read:admin"


@dataclass
class DemoTenant:
    name: str
    kind: str  # "s2s" | "general"
    users: int
    scopes: list[str] | None = None  # None: fakezoom's default grant
    # Filled in as the demo runs:
    tenant_id: str = ""
    key: str = ""
    source_id: str = ""
    credentials: dict[str, Any] = field(default_factory=dict)
    identity_emails: list[str] = field(default_factory=list)
    test: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoOptions:
    users: tuple[int, int, int] = (40, 30, 25)
    days: int = 30
    seed: int = 2026
    serve: bool = False
    data_dir: Path = ROOT / "demo-data"
    use_env_services: bool = True
    worker_concurrency: int = 4
    timeout: float = 240.0
    identities_share: float = 0.6


@dataclass
class DemoResult:
    tenants: list[DemoTenant]
    seconds: float
    fake: FakeZoom  # the ground truth
    urls: dict[str, str]
    pushed: PushedSignIn | None = None  # the webhook step's sign-in and its latency


def demo_tenants(options: DemoOptions) -> list[DemoTenant]:
    # Roles are optional to the product (it degrades to role ids from users) but a real
    # deployment grants them: the two good apps do, so roles come with their names.
    full = [*CLASSIC_SCOPES, "role:read:admin"]
    return [
        DemoTenant("Acme Corp", "s2s", options.users[0], scopes=full),
        DemoTenant("Globex", "general", options.users[1], scopes=full),
        DemoTenant("Initech", "s2s", options.users[2],
                   scopes=[s for s in full if s != MISSING_SCOPE]),
    ]


def fake_config(tenants: list[DemoTenant], options: DemoOptions) -> FakeZoomConfig:
    accounts = []
    for t in tenants:
        app = AppSpec(kind="s2s" if t.kind == "s2s" else "general", name=f"{t.name} insights")
        if t.scopes is not None:
            app.scopes = list(t.scopes)
        accounts.append(AccountSpec(users=t.users, days=options.days, plan=PLAN, apps=[app]))
    return FakeZoomConfig(seed=options.seed, plan=PLAN, accounts=accounts)


class Api:
    """The tenant admin's side: plain HTTP calls to the API."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30.0)

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, key: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, headers={"X-API-Key": key}, **kwargs)
        if response.status_code >= 400:
            raise StackError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def all_items(self, path: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        params = {"limit": 500, **params}
        while True:
            page = self.call("GET", path, key, params=params)
            yield from page["items"]
            if not page.get("next_cursor"):
                return
            params["cursor"] = page["next_cursor"]

    def count(self, path: str, key: str, **params: Any) -> int:
        return sum(1 for _ in self.all_items(path, key, **params))


def _source_body(t: DemoTenant) -> dict[str, Any]:
    c = t.credentials
    if t.kind == "s2s":
        credentials = {"account_id": c["account_id"], "client_id": c["client_id"],
                       "client_secret": c["client_secret"]}
        grant = "account_credentials"
    else:
        credentials = {"client_id": c["client_id"], "client_secret": c["client_secret"],
                       "refresh_token": c["refresh_token"]}
        grant = "refresh_token"
    return {
        "name": "Zoom", "description": f"{t.name}'s Zoom account", "owner": "it@example.com",
        "grant_type": grant, "credentials": credentials, "plan": PLAN,
    }


def _identities(t: DemoTenant, account: Any, share: float) -> list[dict[str, Any]]:
    """What the tenant's HR system knows: most employees, emails in its own capitalisation."""
    users = [u for u in account.all_users() if u.get("email")]
    chosen = users[: max(1, int(len(users) * share))]
    t.identity_emails = [u["email"].lower() for u in chosen]
    return [
        {"external_id": f"hr-{i:04d}", "email": u["email"].upper() if i % 3 == 0 else u["email"],
         "display_name": f"{u.get('first_name', '')} {u.get('last_name', '')}".strip()}
        for i, u in enumerate(chosen)
    ]


def setup_tenants(api: Api, admin_key: str, tenants: list[DemoTenant], fake: Any,
                  options: DemoOptions, console: Console) -> None:
    suffix = uuid.uuid4().hex[:4]  # tenant names are unique: a shared database may have run it
    for index, t in enumerate(tenants):
        account = fake.account(index)
        t.credentials = account.apps[0].credentials()
        tenant = api.call("POST", "/v1/tenants", admin_key, json={"name": f"{t.name} {suffix}"})
        t.tenant_id = tenant["id"]
        t.key = api.call("POST", f"/v1/tenants/{t.tenant_id}/keys", admin_key,
                         json={"name": "demo admin"})["key"]
        loaded = api.call("POST", "/v1/identities", t.key,
                          json=_identities(t, account, options.identities_share))
        source = api.call("POST", "/v1/sources", t.key, json=_source_body(t))
        t.source_id = source["id"]
        grant = "Server-to-Server" if t.kind == "s2s" else "refresh token"
        console.print(
            f"  [bold]{t.name}[/]: tenant, key, {loaded['inserted']} identities, "
            f"source ({grant} app)"
        )


def run_connection_tests(api: Api, tenants: list[DemoTenant], console: Console,
                         timeout: float) -> None:
    tests = {t.name: api.call("POST", f"/v1/sources/{t.source_id}/connection-tests", t.key)
             for t in tenants}
    deadline = time.monotonic() + timeout
    with console.status("testing connections (token, one call, scopes)…", spinner="dots"):
        pending = list(tenants)
        while pending:
            for t in list(pending):
                test = api.call("GET", tests[t.name]["links"]["self"], t.key)
                if test["status"] in ("succeeded", "failed"):
                    t.test = test
                    pending.remove(t)
            if pending and time.monotonic() > deadline:
                raise StackError("connection tests did not finish: see demo-data/logs/")
            time.sleep(0.2)
    for t in tenants:
        if t.test["status"] == "succeeded":
            console.print(f"  [green]✓[/] {t.name}: connected in {t.test.get('token_ms')} ms "
                          f"(token) + {t.test.get('call_ms')} ms (call)")
        else:
            console.print(f"  [red]✗[/] {t.name}: {t.test['message']}")


@dataclass
class _Bars:
    directory: TaskID
    activity: TaskID


def progress_bars(console: Console) -> Progress:
    """The demo's bars. Only the status text gives way on a narrow terminal (cut with an
    ellipsis): the bar, the counts and the clock keep their width, so at 80 columns the bars
    still read instead of collapsing to a sliver."""
    # spinner 1, name 18, bar 16, counts 7, clock 7, and a space between each: 54 columns.
    text = max(12, console.width - 54)
    return Progress(
        SpinnerColumn(table_column=Column(width=1, no_wrap=True)),
        TextColumn("{task.description}", table_column=Column(width=18, no_wrap=True,
                                                              overflow="ellipsis")),
        BarColumn(bar_width=16, table_column=Column(width=16, no_wrap=True)),
        MofNCompleteColumn(table_column=Column(width=7, no_wrap=True, justify="right")),
        TextColumn("{task.fields[line]}", table_column=Column(width=text, no_wrap=True,
                                                               overflow="ellipsis")),
        TimeElapsedColumn(table_column=Column(width=7, no_wrap=True)),
        console=console,
    )


def follow_work(api: Api, tenants: list[DemoTenant], console: Console, timeout: float,
                check_alive: Any) -> None:
    """Progress bars fed by the run records until aggregation, correlation and every activity
    chunk of every connected tenant is final."""
    active = [t for t in tenants if t.test.get("status") == "succeeded"]
    progress = progress_bars(console)
    deadline = time.monotonic() + timeout
    with progress:
        bars = {
            t.name: _Bars(
                progress.add_task(f"{t.name} directory", total=2, line="queued"),
                progress.add_task(f"{t.name} activity", total=None, line="planning"),
            )
            for t in active
        }
        pending = set(bars)
        while pending:
            check_alive()
            for t in active:
                if t.name not in pending:
                    continue
                runs = list(api.all_items(f"/v1/sources/{t.source_id}/runs", t.key,
                                          include_chunks="true"))
                if _update(progress, bars[t.name], runs):
                    pending.discard(t.name)
            if pending and time.monotonic() > deadline:
                raise StackError(
                    f"work for {', '.join(sorted(pending))} not done after {timeout:.0f}s "
                    "(see demo-data/logs/)"
                )
            time.sleep(0.4)


def _update(progress: Progress, bars: _Bars, runs: list[dict[str, Any]]) -> bool:
    def latest(kind: str) -> dict[str, Any] | None:
        top = [r for r in runs if r["kind"] == kind and r["parent_id"] is None]
        return max(top, key=lambda r: r["created_at"]) if top else None

    agg, cor, plan = latest("aggregation"), latest("correlation"), latest("activity")
    steps = sum(1 for r in (agg, cor) if r and r["status"] in FINAL_RUN)
    line = "queued"
    if agg:
        line = f"{agg['seen']} accounts {_mark(agg)}"
    if cor:
        line += f", {cor['inserted'] + cor['updated']} linked {_mark(cor)}"
    progress.update(bars.directory, completed=steps, line=line)
    chunks = [r for r in runs if plan and r["parent_id"] == plan["id"]]
    done = [c for c in chunks if c["status"] in FINAL_RUN]
    records = sum(c["seen"] for c in chunks)
    progress.update(bars.activity, total=len(chunks) or None, completed=len(done),
                    line=f"chunks, {records} records" if chunks else "planning")
    directory_done = steps == 2
    activity_done = plan is not None and plan["status"] in FINAL_RUN and len(done) == len(chunks)
    return directory_done and activity_done


def _mark(run: dict[str, Any]) -> str:
    if run["status"] == "succeeded":
        return "✓"
    return "…" if run["status"] not in FINAL_RUN else run["status"]


def summarise(api: Api, tenants: list[DemoTenant]) -> None:
    for t in tenants:
        if t.test.get("status") != "succeeded":
            t.summary = {"status": "connection test failed", "message": t.test.get("message", "")}
            continue
        src = {"source_id": t.source_id}
        accounts = list(api.all_items("/v1/accounts", t.key, **src))
        insights = []
        for a in accounts:
            figures = api.call("GET", f"/v1/insights/accounts/{a['id']}", t.key,
                               params={"window_days": 30})["activity"]
            insights.append((figures["days_active"], figures["sign_ins"], a["email"], a["status"]))
        insights.sort()
        runs = list(api.all_items(f"/v1/sources/{t.source_id}/runs", t.key))
        t.summary = {
            "status": "synced",
            "accounts": len(accounts),
            "accounts_by_status": {s: sum(1 for a in accounts if a["status"] == s)
                                   for s in sorted({a["status"] for a in accounts})},
            "groups": api.count("/v1/groups", t.key, **src),
            "roles": api.count("/v1/roles", t.key, **src),
            "correlated": sum(1 for a in accounts if a.get("identity_id")),
            "events": api.count("/v1/activity", t.key, **src),
            "meetings": api.count("/v1/meetings", t.key, **src),
            "inactive_30d": api.count("/v1/insights/inactive-accounts", t.key, days=30, **src),
            "least_active": [
                {"email": email, "days_active": days, "sign_ins": sign_ins, "status": status}
                for days, sign_ins, email, status in insights[:3]
            ],
            "failed_runs": sum(1 for r in runs if r["status"] in ("failed", "retryable")),
        }


def summary_table(tenants: list[DemoTenant]) -> Table:
    table = Table(title="What each tenant now sees (30 days)")
    table.add_column("tenant")
    for column in ("accounts", "groups", "roles", "correlated", "events", "meetings",
                   "idle 30d"):
        table.add_column(column, justify="right")
    for t in tenants:
        s = t.summary
        if s.get("status") != "synced":
            table.add_row(t.name, *["-"] * 7)
            continue
        table.add_row(t.name, str(s["accounts"]), str(s["groups"]), str(s["roles"]),
                      f"{s['correlated']}/{s['accounts']}", str(s["events"]),
                      str(s["meetings"]), str(s["inactive_30d"]))
    return table


def print_summary(console: Console, tenants: list[DemoTenant]) -> None:
    console.print(summary_table(tenants))
    for t in tenants:
        s = t.summary
        if s.get("status") != "synced":
            console.print(f"[bold]{t.name}[/]: [red]connection test failed[/]: {s['message']}")
            continue
        by_status = ", ".join(f"{n} {k}" for k, n in s["accounts_by_status"].items())
        least = "; ".join(
            f"{a['email']} ({a['status']}, {a['days_active']} days active, "
            f"{a['sign_ins']} sign-ins)"
            for a in s["least_active"]
        )
        console.print(f"[bold]{t.name}[/]: accounts {by_status}. Least active: {least}")


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    """Start the stack, drive it, summarise; with ``serve``, wait for Ctrl-C before stopping."""
    console = console or Console()
    started = time.monotonic()
    tenants = demo_tenants(options)
    fake = FakeZoom(fake_config(tenants, options))
    stack = Stack(StackConfig(
        data_dir=options.data_dir, use_env_services=options.use_env_services,
        worker_concurrency=options.worker_concurrency, flower=options.serve,
        backfill_days=options.days,
    ))
    with stack, FakeZoomServer(fake) as zoom:
        console.rule("[bold]Activity Insights for Zoom: demo")
        with console.status("starting Redis, the database, workers, beat and the API…"):
            stack.prepare()
            stack.migrate()
            stack.settings_env(zoom.oauth_token_url, zoom.api_url)
            stack.start_services()
            stack.wait_ready()
        db = "SQLite (demo-data/)" if stack.embedded_db else "DATABASE_URL"
        broker = "fakeredis TCP server" if stack.embedded_redis else "REDIS_URL"
        console.print(f"[green]✓[/] up in {time.monotonic() - started:.1f}s: database {db}, "
                      f"broker and caches {broker}, fakezoom with {len(tenants)} Zoom accounts")
        api = Api(stack.api_url)
        try:
            console.print("[bold]1. The admin creates tenants; each adds its identities and "
                          "its Zoom app[/]")
            setup_tenants(api, stack.admin_key, tenants, fake, options, console)
            console.print("[bold]2. Connection tests[/]")
            run_connection_tests(api, tenants, console, timeout=60)
            console.print("[bold]3. Aggregation, correlation and a 30-day activity backfill "
                          "(started by the first good test)[/]")
            follow_work(api, tenants, console, options.timeout, stack.check_alive)
            console.print("[bold]4. Zoom pushes a sign-in (webhook): the insights move within "
                          "seconds[/]")
            pushed = show_pushed_sign_in(api, stack.api_url, tenants[0], fake, 0, console)
            summarise(api, tenants)
        finally:
            api.close()
        seconds = time.monotonic() - started
        print_summary(console, tenants)
        write_demo_reports(stack.api_url, tenants, options.data_dir / "reports", console)
        urls = {
            "api": stack.api_url + "/docs",
            "fakezoom": zoom.base_url + "/_fake/stats",
        }
        if stack.flower_url:
            urls["flower"] = stack.flower_url
        console.print(f"done in {seconds:.1f}s")
        _print_urls(console, stack, tenants, urls, options.serve)
        if options.serve:
            _serve_until_interrupted(console, stack)
        return DemoResult(tenants, seconds, fake, urls, pushed)


def _print_urls(console: Console, stack: Stack, tenants: list[DemoTenant],
                urls: dict[str, str], serve: bool) -> None:
    if not serve:
        console.print("Run [bold]make demo-serve[/] to keep everything up and explore: the API "
                      "(/docs), Flower and fakezoom.")
        return
    console.print("[bold]Explore[/] (Ctrl-C stops everything):")
    console.print(f"  API docs   {urls['api']}")
    console.print(f"  Flower     {urls['flower']}   user {stack.flower_user} "
                  f"password {stack.flower_password}")
    console.print(f"  fakezoom   {urls['fakezoom']}")
    console.print(f"  admin key  {stack.admin_key}")
    for t in tenants:
        console.print(f"  {t.name:<10} key {t.key}   e.g. curl -H 'X-API-Key: {t.key}' "
                      f"{stack.api_url}/v1/insights/inactive-accounts?days=7")
    console.print(f"  logs       {stack.logs}")


def _serve_until_interrupted(console: Console, stack: Stack) -> None:
    try:
        while True:
            stack.check_alive()
            time.sleep(1.0)
    except KeyboardInterrupt:
        console.print("\nstopping…")


def _sigterm_as_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true",
                        help="keep the API, Flower and fakezoom running until Ctrl-C")
    parser.add_argument("--users", type=int, nargs=3, metavar=("S2S", "REFRESH", "NO_SCOPE"),
                        default=[40, 30, 25], help="users in each tenant's Zoom account")
    parser.add_argument("--concurrency", type=int, default=4, help="sync worker processes")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    console = Console()
    users = (args.users[0], args.users[1], args.users[2])
    options = DemoOptions(users=users, serve=args.serve,
                          worker_concurrency=args.concurrency)
    try:
        run_demo(options, console)
    except KeyboardInterrupt:
        console.print("interrupted: everything stopped")
        return 130
    except StackError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    return 0
