"""The access-review report page: one Jinja2 template, its stylesheet inlined, charts as SVG.

The page is rendered from the review's totals and the rows its tables show (one statement,
``findings.shown_rows``); each findings table shows its first ``TABLE_ROWS`` accounts and says
how many more the CSV holds, so a 10,000-account tenant's page stays small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlmodel import Session

from worker.models import Source, Tenant
from worker.reports import charts
from worker.reports.findings import (
    Review,
    daily_active_accounts,
    row_findings,
    shown_rows,
    to_review,
)
from worker.reports.schemas import FINDINGS, AccountReview, ReviewSummary

HERE = Path(__file__).parent
TABLE_ROWS = 200

TITLES = {
    "orphan": ("Orphan accounts", "Zoom accounts linked to no identity."),
    "leaver": ("Leavers with access",
               "Identity inactive or terminated while the Zoom account is still active."),
    "unused_licence": ("Unused licences", "Licensed accounts with no activity in {days} days."),
    "idle_privileged": ("Idle privileged accounts",
                        "Owner, Admin or custom admin roles with no activity in {days} days."),
    "never_used": ("Never used", "Created more than {days} days ago, no activity ever."),
    "pending_invitation": ("Pending invitations", "Invited more than {days} days ago."),
}


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M") if v else "never"
    return env


@lru_cache(maxsize=1)
def _stylesheet() -> Markup:
    return Markup((HERE / "static" / "report.css").read_text(encoding="utf-8"))


@dataclass
class Section:
    finding: str
    title: str
    description: str
    rows: list[AccountReview] = field(default_factory=list)
    total: int = 0


def render(
    session: Session, review: Review, progress: Callable[[int], None] | None = None
) -> tuple[str, ReviewSummary]:
    """The page's HTML, and the summary it shows."""
    params = review.params
    sections = {
        name: Section(name, TITLES[name][0], TITLES[name][1].format(days=params.days))
        for name in FINDINGS
    }
    # Totals and the shown rows from the database (findings.shown_rows): only the accounts a
    # table shows leave it, and only they become AccountReview objects.
    tally, rows = shown_rows(session, review, TABLE_ROWS)
    for name, section in sections.items():
        section.total = tally.findings[name]
    for row in rows:
        shown: AccountReview | None = None
        for name in row_findings(row):
            if 0 < getattr(row, f"rank_{name}") <= TABLE_ROWS:
                shown = shown or to_review(review, row)
                sections[name].rows.append(shown)
    if progress:
        progress(tally.accounts)
    summary: ReviewSummary = tally.summary(review, daily_active_accounts(session, params))
    tenant = session.get(Tenant, params.tenant_id)
    source = session.get(Source, params.source_id) if params.source_id else None
    licensed_used = summary.licences - summary.unused_licences
    html = _environment().get_template("report.html").render(
        tenant=tenant.name if tenant else str(params.tenant_id),
        source=source.name if source else None,
        summary=summary,
        sections=list(sections.values()),
        table_rows=TABLE_ROWS,
        stylesheet=_stylesheet(),
        charts={
            "daily": charts.daily_active(summary.daily_active_accounts),
            "days": charts.days_active_distribution(summary.days_active_distribution),
            "licences": charts.licences(licensed_used, summary.unused_licences),
        },
    )
    return html, summary
