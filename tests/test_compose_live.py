"""The compose services run as an operator would run them without Docker: each service's command
and environment planned from compose.yaml, a filled deploy.env and the secret files, started as
processes against throwaway Postgres and Redis servers (never the shared ones) and the demo
profile's fakezoom. They come up healthy, finish a connection test, the aggregation and the
activity backfill it starts, /metrics shows the run counters moving, and no secret appears in any
process's log.

Flower runs too, on a free port (its healthcheck's port rewritten to match): it comes up healthy,
lists the tasks with their tenant's name, its /metrics needs its basic auth, and none of its
pages or API answers holds a secret.

Scaled down (a 20-user fake, 3 days of activity, two sync children) to stay fast.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cryptography.fernet import Fernet
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.services import Services, _throwaway_postgres, _throwaway_redis
from tests.test_compose import ROOT, _filled_env, _interpolate, _service_env
from worker.kit.net import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
STARTED = ("fakezoom", "api", "flower", "worker-tests", "worker-sync", "beat")
DEADLINE = 240.0


def _wait(what: str, check: Callable[[], Any], procs: dict[str, subprocess.Popen[bytes]],
          logs: Path, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None and name != "migrate":
                log = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited ({proc.returncode}) waiting for {what}:\n"
                                     f"{log}")
        with contextlib.suppress(httpx.HTTPError, OSError, AssertionError):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


@contextlib.contextmanager
def _stack(tmp: Path) -> Iterator[dict[str, Any]]:
    services = Services(postgres_url="", redis_url="")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        pg_url = make_url(_throwaway_postgres(services))
        redis_url = _throwaway_redis(services)
        ports = {"api": free_port(), "fakezoom": free_port(), "flower": free_port()}
        # The operator's deploy.env (demo profile) and ./secrets/.
        deploy_env = {**_filled_env(),
                      "AI_ZOOM_OAUTH_URL": "http://fakezoom:9000/oauth/token",
                      "AI_ZOOM_API_URL": "http://fakezoom:9000/v2",
                      "AI_ACTIVITY_BACKFILL_DAYS": "3", "SYNC_WORKER_CONCURRENCY": "2",
                      "TEST_WORKER_CONCURRENCY": "1", "AI_LOG_LEVEL": "INFO"}
        compose = _interpolate(yaml.safe_load((ROOT / "compose.yaml").read_text()), deploy_env)
        files: dict[str, Path] = {}
        (tmp / "secrets").mkdir()
        for name in compose["secrets"]:
            files[name] = tmp / "secrets" / name
            files[name].write_text((Fernet.generate_key().decode() if name == "encryption_key"
                                    else secrets.token_hex(16)) + "\n")
        # What the postgres service does on its first start: its user and database.
        password = files["postgres_password"].read_text().strip()
        user, db = deploy_env["POSTGRES_USER"], deploy_env["POSTGRES_DB"]
        admin = create_engine(pg_url.render_as_string(hide_password=False),
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'"))
            conn.execute(text(f"CREATE DATABASE {db} OWNER {user}"))
        admin.dispose()
        data = tmp / "data"
        data.mkdir()
        hosts = {"@postgres:5432/": f"@127.0.0.1:{pg_url.port}/",
                 "redis://redis:6379": redis_url,
                 "http://fakezoom:9000": f"http://127.0.0.1:{ports['fakezoom']}"}

        def plan(name: str) -> tuple[list[str], dict[str, str]]:
            svc = compose["services"][name]
            env = _service_env(svc, files, deploy_env)
            for key, value in env.items():
                for old, new in hosts.items():
                    value = value.replace(old, new)
                env[key] = value
            argv = [a.replace("/data/", f"{data}/") for a in svc["command"]]
            if argv[0] == "activity-insights":
                argv[0] = str(BIN / "activity-insights")
            else:
                argv[0] = sys.executable
            if name in ports:
                argv[argv.index("--port") + 1] = str(ports[name])
                # Loopback, as compose publishes them (flower's command relies on the default).
                if "--host" in argv:
                    argv[argv.index("--host") + 1] = "127.0.0.1"
                else:
                    argv += ["--host", "127.0.0.1"]
            if name == "fakezoom":  # scaled down, and its credentials for the "admin"
                argv[argv.index("--users") + 1] = "20"
                argv[argv.index("--days") + 1] = "3"
                argv += ["--json-out", str(tmp / "zoom.json"), "--no-rate-limits"]
            env.update(PATH=f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                       HOME=str(tmp), HOSTNAME=socket.gethostname())
            return argv, env

        logs = tmp / "logs"
        logs.mkdir()

        def start(name: str) -> subprocess.Popen[bytes]:
            argv, env = plan(name)
            with (logs / f"{name}.log").open("ab") as out:
                procs[name] = subprocess.Popen(argv, env=env, stdout=out,
                                               stderr=subprocess.STDOUT, cwd=tmp,
                                               start_new_session=True)
            return procs[name]

        migrate = start("migrate")
        assert migrate.wait(180) == 0, (logs / "migrate.log").read_text()
        for name in STARTED:
            start(name)
        yield {"compose": compose, "plan": plan, "procs": procs, "logs": logs, "files": files,
               "ports": ports, "data": data, "tmp": tmp, "redis_url": redis_url}
    finally:
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        services.close()


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def _healthcheck(stack: dict[str, Any], name: str) -> bool:
    test = stack["compose"]["services"][name]["healthcheck"]["test"]
    _, env = stack["plan"](name)
    if test[0] == "CMD-SHELL":
        argv = ["sh", "-c", test[1]]
    else:
        # The container's port as the test's (only flower's healthcheck names one).
        argv = [a.replace("/data/", f"{stack['data']}/").replace(
            "127.0.0.1:5555/", f"127.0.0.1:{stack['ports']['flower']}/") for a in test[1:]]
        argv[0] = sys.executable if argv[0] == "python" else argv[0]
    if name == "flower":
        assert any(f":{stack['ports']['flower']}/" in a for a in argv), argv
    return subprocess.run(argv, env=env, capture_output=True, timeout=60).returncode == 0


def test_compose_services_as_processes_run_a_test_an_aggregation_and_a_backfill(
    tmp_path: Path,
) -> None:
    # The client is closed with the stack (an open one leaves its sockets to the collector).
    with _stack(tmp_path) as stack, httpx.Client(timeout=30) as http, \
            contextlib.ExitStack() as clients:
        procs, logs = stack["procs"], stack["logs"]
        http.base_url = httpx.URL(f"http://127.0.0.1:{stack['ports']['api']}")
        admin = {"Authorization": f"Bearer {stack['files']['admin_api_key'].read_text().strip()}"}
        _wait("the api to be ready", lambda: http.get("/readyz").status_code == 200, procs, logs)
        for name in ("worker-tests", "worker-sync"):
            _wait(f"{name}'s healthcheck", lambda n=name: _healthcheck(stack, n), procs, logs)
        _wait("beat's healthcheck", lambda: _healthcheck(stack, "beat"), procs, logs)
        _wait("flower's healthcheck", lambda: _healthcheck(stack, "flower"), procs, logs)
        flower_env = stack["plan"]("flower")[1]
        flower = clients.enter_context(httpx.Client(
            base_url=f"http://127.0.0.1:{stack['ports']['flower']}", timeout=30,
            auth=(flower_env["AI_FLOWER_USER"],
                  Path(flower_env["AI_FLOWER_PASSWORD_FILE"]).read_text().strip())))
        # Flower lists only the tasks whose events it heard: wait for its event stream.
        _wait("flower to hear the workers",
              lambda: len(flower.get("/workers", params={"json": 1}).json()["data"]) >= 2,
              procs, logs)
        zoom = _wait("fakezoom", lambda: json.loads((stack["tmp"] / "zoom.json").read_text()),
                     procs, logs)
        before = _samples(http.get("/metrics", headers=admin).text)

        # As a tenant admin: tenant, key, source, connection test.
        tenant = http.post("/v1/tenants", json={"name": "acme"}, headers=admin).json()
        key = http.post(f"/v1/tenants/{tenant['id']}/keys", json={"name": "ops"},
                        headers=admin).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        app = next(a for a in zoom["accounts"][0]["apps"] if a["kind"] == "s2s")
        source = http.post("/v1/sources", headers=headers, json={
            "name": "zoom", "grant_type": "account_credentials",
            "credentials": {k: app[k] for k in ("account_id", "client_id", "client_secret")},
        })
        assert source.status_code == 201, source.text
        sid = source.json()["id"]
        test = http.post(f"/v1/sources/{sid}/connection-tests", headers=headers)
        assert test.status_code == 202, test.text

        def finished_test() -> dict[str, Any] | None:
            body = http.get(test.json()["links"]["self"], headers=headers).json()
            return body if body["status"] in ("succeeded", "failed") else None

        result = _wait("the connection test", finished_test, procs, logs)
        assert result["status"] == "succeeded", result

        # A passed test starts the aggregation and the activity backfill.
        final = {"succeeded", "failed", "retryable", "deferred", "skipped"}

        def work_done() -> list[dict[str, Any]] | None:
            runs = http.get(f"/v1/sources/{sid}/runs", headers=headers,
                            params={"include_chunks": "true", "limit": 200}).json()["items"]
            top = {r["kind"]: r for r in runs if r["parent_id"] is None}
            chunks = [r for r in runs if r["parent_id"] is not None]
            done = ("aggregation" in top and "activity" in top and chunks
                    and all(r["status"] in final for r in [*top.values(), *chunks]))
            return runs if done else None

        runs = _wait("the aggregation and the backfill", work_done, procs, logs)
        statuses = {(r["kind"], r["parent_id"] is None): r["status"] for r in runs}
        assert statuses[("aggregation", True)] == "succeeded", runs
        assert statuses[("activity", True)] == "succeeded", runs
        assert all(r["status"] == "succeeded" for r in runs if r["parent_id"]), runs

        after_body = http.get("/metrics", headers=admin).text
        after = _samples(after_body)

        def moved(name: str, **labels: str) -> float:
            key_ = (name, tuple(sorted(labels.items())))
            return after.get(key_, 0.0) - before.get(key_, 0.0)

        assert moved("ai_runs", kind="aggregation", status="succeeded") >= 1
        assert moved("ai_runs", kind="activity", status="succeeded") >= 2  # plan + chunks
        assert moved("ai_connection_tests", status="succeeded") == 1
        assert moved("ai_token_refreshes_total", outcome="ok") >= 1
        assert sum(v for (n, _), v in after.items() if n == "ai_zoom_requests_total") > 0
        assert http.get("/metrics", headers=headers).status_code == 403

        # Flower: its Prometheus endpoint and API need its login; the tasks it lists name
        # their tenant (not in the task name).
        anonymous = clients.enter_context(httpx.Client(base_url=str(flower.base_url),
                                                       timeout=30))
        assert anonymous.get("/metrics").status_code == 401
        assert anonymous.get("/api/tasks").status_code == 401
        flower_metrics = flower.get("/metrics")
        assert flower_metrics.status_code == 200
        assert "flower_events_total" in flower_metrics.text
        assert "acme" not in flower_metrics.text

        def flower_tasks() -> dict[str, Any] | None:
            listed: dict[str, Any] = flower.get("/api/tasks").json()
            names = {t.get("name") for t in listed.values()}
            return listed if {"zoom.test_connection", "zoom.aggregate"} <= names else None

        listed = _wait("flower's task list", flower_tasks, procs, logs)
        assert all("'tenant': 'acme'" in t["kwargs"] for t in listed.values()
                   if t.get("name", "").startswith("zoom.")), listed
        workers = list(flower.get("/api/workers").json())
        flower_pages = [flower.get(path).text for path in (
            "/", "/tasks", "/workers", "/broker", "/api/workers", "/api/tasks",
            *(f"/api/task/info/{task_id}" for task_id in listed),
            *(f"/worker/{name}" for name in workers))]
        flower_pages.append(flower_metrics.text)

        # The access token the workers used: encrypted in Redis, and never logged either.
        import redis

        with redis.Redis.from_url(stack["redis_url"]) as client:
            stored = client.get(f"ai:token:{sid}")
        assert stored is not None
        key_file = stack["files"]["encryption_key"]
        access_token = json.loads(Fernet(key_file.read_text().strip().encode()).decrypt(
            json.loads(stored)["ct"].encode()))["access_token"]
        assert access_token.encode() not in stored

    # No secret in any log line of any product service, nor in the metrics. (fakezoom stands in
    # for Zoom and prints its apps' credentials on purpose, as Zoom's console shows them.)
    values = [p.read_text().strip() for p in stack["files"].values()]
    values += [app["client_secret"], access_token]
    product_logs = [p for p in logs.iterdir() if p.name != "fakezoom.log"]
    assert {p.stem for p in product_logs} == {"migrate", *STARTED} - {"fakezoom"}
    for log in product_logs:
        content = log.read_text(errors="replace")
        assert content, f"{log.name} is empty"
        for value in values:
            assert value not in content, f"a secret in {log.name}"
    for value in values:
        assert value not in after_body
        for page in flower_pages:
            assert value not in page, "a secret in a Flower page"
    # Flower kept its task history under the name compose gives (flower.db; with dbm.dumb, the
    # only dbm of some Pythons, its .dat/.dir/.bak beside it), never flower.db.db.
    state = sorted(p.name for p in stack["data"].iterdir() if p.name.startswith("flower"))
    assert state, "flower saved no state"
    assert {n.removeprefix("flower.db") for n in state} <= {"", ".dat", ".dir", ".bak"}, state
