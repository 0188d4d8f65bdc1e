"""`make demo`: the product in miniature on embedded defaults, for a newcomer's first look.

Not part of the product: it drives the API over HTTP and stands fakezoom and fakeredis in for
Zoom and Redis, so it may import `fakezoom` and the `demo` extra's packages, which `worker` and
`api` never do (the import contracts in pyproject.toml hold them to that).

    run.py             the scenario: tenants, sources, connection tests, the summary
    stack.py           the processes (workers, beat, API, Flower) and their orderly shutdown
    embedded_redis.py  fakeredis's TCP server in a process of its own
"""
