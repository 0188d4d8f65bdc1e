"""HTTP API for tenant admins and automation: validates, stores, enqueues and reads.

It never calls Zoom; every Zoom call happens in ``worker/`` tasks enqueued with ids only.
"""
