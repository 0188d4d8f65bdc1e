"""The access review: findings per tenant, their exports (CSV, JSON) and the report page.

Here, not in the API, because the CLI (and the demo, the bench) write reports too.
"""
