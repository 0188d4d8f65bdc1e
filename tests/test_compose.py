"""compose.yaml cannot be run here (no Docker engine), so it is checked statically: every
service's command is a real entry point of this project that accepts its arguments, and once an
operator fills in what deploy.env.example marks as required, every service has the settings it
needs. The launchers are invoked for real (only the final `exec` is captured).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import yaml
from cryptography.fernet import Fernet
from typer.testing import CliRunner

from worker.cli import app
from worker.cli import launch as launchers
from worker.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "activity-insights-zoom"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def _example() -> tuple[dict[str, str], set[str]]:
    """deploy.env.example as a dict, and the keys whose comment marks them required."""
    values: dict[str, str] = {}
    required: set[str] = set()
    # A comment covers the keys right below it, up to the next comment or blank line.
    comment: list[str] = []
    after_key = False
    for line in (ROOT / "deploy.env.example").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment = [stripped] if after_key else [*comment, stripped]
            after_key = False
            continue
        if not stripped:
            comment, after_key = [], False
            continue
        key, _, value = stripped.partition("=")
        values[key] = value
        if any("Required" in c for c in comment):
            required.add(key)
        after_key = True
    return values, required


def _filled_env() -> dict[str, str]:
    """What an operator's deploy.env looks like once the required values are filled in."""
    values, required = _example()
    for key in required:
        if not values[key]:
            values[key] = (
                Fernet.generate_key().decode() if key == "AI_ENCRYPTION_KEY"
                else secrets.token_hex(16)
            )
    return values


def _interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}; `$$` is a literal `$`."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name, "")
        if op in (":-", "-"):
            return current or arg
        if op in (":?", "?") and not current:
            raise AssertionError(f"compose needs {name}: {arg}")
        if name not in env:
            raise AssertionError(f"compose uses ${{{name}}}, which deploy.env.example lacks")
        return current

    return _VAR.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return dict(_interpolate(raw, _filled_env()))


def _app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith(IMAGE)
    }


def _service_env(svc: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in svc.get("env_file", []):
        path = item["path"] if isinstance(item, dict) else item
        assert path == "deploy.env", path  # the file whose example is committed
        env.update(_filled_env())
    env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
    return env


def _resolve(args: list[str]) -> click.Command:
    """Parse ARGS like the console script would; fails on an unknown command or option."""
    command: click.Command = typer.main.get_command(app)
    ctx = command.make_context("activity-insights", list(args))
    while isinstance(command, click.Group):
        rest = [*ctx.protected_args, *ctx.args]
        assert rest, f"{args}: a command group, not a command"
        sub = command.get_command(ctx, rest[0])
        assert sub is not None, f"{args}: no command {rest[0]!r}"
        ctx = sub.make_context(rest[0], rest[1:], parent=ctx)
        command = sub
    return command


def test_every_required_service_is_there(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "migrate", "api", "worker-tests", "worker-sync", "beat",
                 "flower", "fakezoom"):
        assert name in services, name
    assert {svc.get("image") for svc in _app_services(compose).values()} == {
        f"{IMAGE}:latest"
    }, "one image for every application service"


def test_every_app_command_is_a_real_entry_point(compose: dict[str, Any]) -> None:
    for name, svc in _app_services(compose).items():
        command = svc["command"]
        assert isinstance(command, list), f"{name}: exec form, so signals reach the process"
        if command[0] == "activity-insights":
            _resolve(command[1:])
        else:
            assert command[:2] == ["python", "-m"], name
            _MODULES_RUN.add(command[2])


# Modules compose runs with `python -m` or hands to `celery -A`; checked in one test below.
_MODULES_RUN: set[str] = set()


def _launched(svc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> launchers.Launch:
    captured: list[launchers.Launch] = []
    monkeypatch.setattr(launchers, "exec_launch", lambda launch, environ=None: captured.append(
        launch))
    # Only the service's own environment: nothing from the test run leaks in.
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("AI_") or k in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(_service_env(svc))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, svc["command"][1:], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert len(captured) == 1
    return captured[0]


def test_every_service_has_the_settings_it_needs(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, svc in _app_services(compose).items():
        env = _service_env(svc)
        # Settings as the container builds them: valid URLs pointing at the compose services.
        saved = dict(os.environ)
        try:
            for key in [k for k in os.environ if k.startswith("AI_")]:
                del os.environ[key]
            os.environ.update(env)
            settings = Settings()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        assert "@postgres:5432/" in settings.database_url, name
        assert settings.redis_url.startswith("redis://redis:6379"), name
        settings.require("database_url", "redis_url", "encryption_key")
        command = svc["command"]
        if command[:2] == ["activity-insights", "api"]:
            settings.require("admin_api_key")
        if command[:2] == ["activity-insights", "flower"]:
            settings.require("flower_user", "flower_password")
        if command[0] == "activity-insights" and command[1] in {"worker", "beat", "api",
                                                                "flower"}:
            launch = _launched(svc, monkeypatch)
            if command[1] == "flower":
                assert "FLOWER_BASIC_AUTH" in launch.env
                assert not any(settings.flower_password in a for a in launch.argv)


def test_workers_cover_every_queue_and_tests_have_their_own(compose: dict[str, Any]) -> None:
    covered: dict[str, set[str]] = {}
    for name, svc in _app_services(compose).items():
        command = svc["command"]
        if command[:2] != ["activity-insights", "worker"]:
            continue
        queues = launchers.parse_queues(command[command.index("--queues") + 1])
        covered[name] = set(queues)
        node = command[command.index("--name") + 1]
        health = " ".join(svc["healthcheck"]["test"])
        assert f"--destination {node}@$HOSTNAME" in health, name
    assert set().union(*covered.values()) == set(launchers.ALL_QUEUES)
    assert {"connection_tests"} in covered.values(), "connection tests on a worker of their own"


def test_dependencies_wait_for_health_and_the_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, svc in services.items():
        for dep, spec in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
            else:
                assert condition == "service_completed_successfully" and dep == "migrate"
    for name in ("api", "worker-tests", "worker-sync", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        ), name
    for name in ("postgres", "redis", "api", "worker-tests", "worker-sync", "flower"):
        assert "healthcheck" in services[name], name
    assert services["migrate"]["command"] == ["activity-insights", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"


def test_stateful_services_keep_their_data(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["postgres"]["volumes"])
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd
    assert "--maxmemory-policy noeviction" in redis_cmd
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    for volume in ("pgdata", "redisdata"):
        assert volume in compose["volumes"]


def test_exactly_one_beat_and_fakezoom_only_in_the_demo_profile(compose: dict[str, Any]) -> None:
    services = compose["services"]
    beats = [n for n, s in _app_services(compose).items() if s["command"][1:2] == ["beat"]]
    assert beats == ["beat"]
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    assert services["fakezoom"]["profiles"] == ["demo"]
    assert [n for n, s in services.items() if s.get("profiles")] == ["fakezoom"]


def test_healthchecks_use_tools_the_image_has(compose: dict[str, Any]) -> None:
    for name, svc in _app_services(compose).items():
        test = svc.get("healthcheck", {}).get("test")
        if not test:
            continue
        line = test[1] if test[0] == "CMD-SHELL" else shlex.join(test[1:])
        tool = shlex.split(line)[0]
        assert tool in {"python", "celery"}, f"{name}: {tool} is not in the python:slim image"
        if tool == "celery":
            assert shlex.split(line)[2] == launchers.CELERY_APP


def test_modules_compose_runs_exist(compose: dict[str, Any]) -> None:
    test_every_app_command_is_a_real_entry_point(compose)
    for module in {*_MODULES_RUN, launchers.CELERY_APP}:
        spec = importlib.util.find_spec(module)
        assert spec is not None, f"no module {module}"
        if spec.submodule_search_locations is not None:  # a package: `-m` runs its __main__
            assert importlib.util.find_spec(f"{module}.__main__"), f"{module} has no __main__"


def test_dockerfile_installs_the_console_script_and_runs_unprivileged() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-deps -e ." in text
    assert re.search(r"^USER\s+app\b", text, re.M)
    assert "COPY migrations" in text and "COPY alembic.ini" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "deploy.env" in ignored and ".env" in ignored
