"""Leases on real Redis: exclusive, renewed while held, and freed by expiry when a holder dies."""

from __future__ import annotations

import time

from worker.kit.locks import LeaseLock, TenantSlot, renewing


def test_a_lock_is_exclusive_and_names_its_holder(redis_client) -> None:
    first = LeaseLock(redis_client, "ai:lock:test", owner="run-1", lease=5)
    second = LeaseLock(redis_client, "ai:lock:test", owner="run-2", lease=5)
    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == "run-1"
    first.release()
    assert second.acquire()
    second.release()


def test_a_renewed_lock_outlives_its_lease_and_an_abandoned_one_expires(redis_client) -> None:
    held = LeaseLock(redis_client, "ai:lock:renewed", owner="alive", lease=0.6)
    assert held.acquire()
    with renewing(held, interval=0.1) as renewer:
        time.sleep(1.2)
        assert not LeaseLock(redis_client, "ai:lock:renewed", owner="x", lease=1).acquire()
        assert not renewer.lost.is_set()
    # Released on exit.
    assert redis_client.get("ai:lock:renewed") is None

    dead = LeaseLock(redis_client, "ai:lock:dead", owner="killed", lease=0.3)
    assert dead.acquire()  # never renewed nor released, as after SIGKILL
    time.sleep(0.5)
    assert LeaseLock(redis_client, "ai:lock:dead", owner="next", lease=1).acquire()


def test_tenant_slots_bound_concurrency_and_free_on_release_or_expiry(redis_client) -> None:
    slots = [TenantSlot(redis_client, "t1", holder=f"task-{i}", limit=2, lease=0.4)
             for i in range(3)]
    assert slots[0].acquire()
    assert slots[1].acquire()
    assert not slots[2].acquire()
    # Another tenant is not affected.
    assert TenantSlot(redis_client, "t2", holder="other", limit=2, lease=1).acquire()
    slots[0].release()
    assert slots[2].acquire()
    assert slots[1].renew()
    time.sleep(0.5)  # every lease ran out: a dead holder blocks nobody
    assert not slots[1].renew()
    assert TenantSlot(redis_client, "t1", holder="late", limit=2, lease=1).in_use() == 0
