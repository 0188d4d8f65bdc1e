"""The demo's webhook step: Zoom pushes a sign-in, and the insights show it within seconds.

The tenant sets its source's webhook Secret Token (`PATCH /v1/sources/{id}`, write-only, the way
an admin pastes it from the Zoom app's Feature page); fakezoom's event subscription for that
Zoom account is pointed at the demo API's `/v1/webhooks/zoom/{source_id}` with the same token;
then one of the tenant's idle accounts signs in at Zoom. fakezoom POSTs the signed
`user.signed_in`, the API stores it, the worker applies it, and the demo polls
`GET /v1/insights/accounts/{id}` until the account's last activity is that sign-in: the time
from the sign-in to that answer is what it prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

from demo.stack import StackError
from fakezoom.core import FakeZoom

if TYPE_CHECKING:
    from demo.run import Api, DemoTenant

# A demo value, as an admin would copy it from the Zoom app; never a real one.
SECRET_TOKEN = "demo-webhook-secret-token"
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class PushedSignIn:
    email: str
    signed_in_at: datetime
    before: datetime | None  # the account's last activity before the sign-in
    seconds: float  # from the sign-in at Zoom to the insight showing it


def _idle_account(api: Api, tenant: DemoTenant) -> dict[str, Any]:
    """An active account with no activity in 30 days (what an access review would flag), or
    else any active account."""
    params = {"source_id": tenant.source_id}
    for item in api.all_items("/v1/insights/inactive-accounts", tenant.key, days=30, **params):
        if item["account"]["status"] == "active" and item["account"]["email"]:
            account: dict[str, Any] = item["account"]
            return account
    for account in api.all_items("/v1/accounts", tenant.key, **params):
        if account["status"] == "active" and account["email"]:
            return account
    raise StackError(f"{tenant.name} has no active account to sign in with")


def _last_activity(api: Api, tenant: DemoTenant, account_id: int) -> datetime | None:
    figures = api.call("GET", f"/v1/insights/accounts/{account_id}", tenant.key)["activity"]
    value = figures["last_activity_at"]
    return datetime.fromisoformat(value) if value else None


def push_sign_in(api: Api, api_url: str, tenant: DemoTenant, fake: FakeZoom, index: int,
                 timeout: float = 30.0) -> PushedSignIn:
    """Subscribe the tenant's Zoom account (fakezoom account `index`) to the API, sign one
    idle account in at Zoom, and wait for the insight to show it."""
    api.call("PATCH", f"/v1/sources/{tenant.source_id}", tenant.key,
             json={"credentials": {"webhook_secret_token": SECRET_TOKEN}})
    fake.webhooks.configure(url=f"{api_url}/v1/webhooks/zoom/{tenant.source_id}",
                            secret=SECRET_TOKEN, account=index)
    account = _idle_account(api, tenant)
    before = _last_activity(api, tenant, account["id"])
    started = time.monotonic()
    event = fake.account(index).sign_in(account["zoom_id"], client_type="Mac")
    signed_in_at = datetime.fromisoformat(event["time"]).astimezone(UTC)
    deadline = started + timeout
    while True:
        latest = _last_activity(api, tenant, account["id"])
        if latest is not None and latest >= signed_in_at:
            return PushedSignIn(account["email"], signed_in_at, before,
                                time.monotonic() - started)
        if time.monotonic() > deadline:
            raise StackError(f"the pushed sign-in of {account['email']} did not reach the "
                             f"insights within {timeout:.0f}s (see demo-data/logs/)")
        time.sleep(POLL_SECONDS)


def show_pushed_sign_in(api: Api, api_url: str, tenant: DemoTenant, fake: FakeZoom,
                        index: int, console: Console) -> PushedSignIn:
    pushed = push_sign_in(api, api_url, tenant, fake, index)
    before = (f"last active {pushed.before:%Y-%m-%d %H:%M}" if pushed.before
              else "never active")
    console.print(f"  [green]✓[/] {tenant.name}: {pushed.email} ({before}) signed in at "
                  f"{pushed.signed_in_at:%H:%M:%S} UTC; in the insights "
                  f"[bold]{pushed.seconds:.2f} s[/] later")
    return pushed
