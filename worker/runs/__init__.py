"""The run lifecycle: who holds a run (leases in Postgres), how a worker stops (hand-back), and
the sweep that re-sends whatever a dead holder or a lost broker message left behind.

Postgres is the truth of what work exists and where it stands; the broker only delivers. Every
non-terminal row carries `lease_until`: a queued row's message, or a running row's worker, is
presumed alive until then. Past it, the scheduler's tick sends the row again (`sweep`), and the
usual guards (terminal check, per-source Redis lock) make a second delivery harmless.
"""
