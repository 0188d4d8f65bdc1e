"""``python -m worker.cli``: the same commands as the ``activity-insights`` script."""

from worker.cli.main import app

app(prog_name="activity-insights")
