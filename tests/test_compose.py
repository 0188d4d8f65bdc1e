"""compose.yaml cannot be run here (no Docker engine), so it is checked statically: every
service's command is a real entry point of this project that accepts its arguments, and once an
operator fills in deploy.env.example and the secret files, every service has the settings it
needs and no more (no Fernet or admin key where it is not used). The launchers are invoked for
real (only the final `exec` is captured).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shelve
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import uvicorn
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


SECRET_MOUNT = "/run/secrets/"


@pytest.fixture(scope="module")
def secret_files(compose: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
                 ) -> dict[str, Path]:
    """The operator's ./secrets/: one generated value per secret compose declares."""
    root = tmp_path_factory.mktemp("secrets")
    files: dict[str, Path] = {}
    for name, spec in compose["secrets"].items():
        assert spec["file"].startswith("./secrets/"), spec
        value = (Fernet.generate_key().decode() if name == "encryption_key"
                 else secrets.token_hex(16))
        files[name] = root / name
        files[name].write_text(value + "\n")  # as `echo > file` or `openssl rand >` write it
    return files


def _app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: svc for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith(IMAGE)
    }


def _service_env(svc: dict[str, Any], files: dict[str, Path],
                 deploy_env: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment as compose builds it, with /run/secrets/<name> pointing at the
    test's secret files, and only for the secrets the service lists (as compose mounts them)."""
    env: dict[str, str] = {}
    for item in svc.get("env_file", []):
        path = item["path"] if isinstance(item, dict) else item
        assert path == "deploy.env", path  # the file whose example is committed
        env.update(deploy_env if deploy_env is not None else _filled_env())
    env.update({k: str(v) for k, v in (svc.get("environment") or {}).items()})
    mounted = set(svc.get("secrets") or [])
    for key, value in env.items():
        if value.startswith(SECRET_MOUNT):
            name = value.removeprefix(SECRET_MOUNT)
            assert name in mounted, f"{key} reads secret {name}, which is not mounted"
            env[key] = str(files[name])
    return env


def _settings_of(env: dict[str, str]) -> Settings:
    """Settings as the container builds them from exactly ``env``."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("AI_")]:
            del os.environ[key]
        os.environ.update(env)
        return Settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


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


def _launched(svc: dict[str, Any], files: dict[str, Path],
              monkeypatch: pytest.MonkeyPatch) -> launchers.Launch:
    captured: list[launchers.Launch] = []
    monkeypatch.setattr(launchers, "exec_launch", lambda launch, _environ=None: captured.append(
        launch))
    # Only the service's own environment: nothing from the test run leaks in.
    env: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith("AI_") or k in {"DATABASE_URL", "REDIS_URL"}
    }
    env.update(_service_env(svc, files))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, svc["command"][1:], env=env)
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert len(captured) == 1
    return captured[0]


# What reads Postgres and stored credentials; flower only reads the broker.
DATA_COMMANDS = {"api", "worker", "beat", "db"}


def test_every_service_has_the_settings_it_needs(
    compose: dict[str, Any], secret_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, svc in _app_services(compose).items():
        command = svc["command"]
        if command[0] != "activity-insights":
            continue
        settings = _settings_of(_service_env(svc, secret_files))
        assert settings.redis_url.startswith("redis://redis:6379"), name
        if command[1] in DATA_COMMANDS:
            assert "@postgres:5432/" in settings.database_url, name
            # The password came from the same file the postgres service reads.
            password = secret_files["postgres_password"].read_text().strip()
            assert f":{password}@postgres:5432/" in settings.database_url, name
            settings.require("database_url", "redis_url", "encryption_key")
            assert settings.encryption_key == secret_files["encryption_key"].read_text().strip()
        if command[1] == "api":
            settings.require("admin_api_key")
        if command[1] == "flower":
            settings.require("flower_user", "flower_password")
        if command[1] in {"worker", "beat", "api", "flower"}:
            launch = _launched(svc, secret_files, monkeypatch)
            if command[1] == "flower":
                assert "FLOWER_BASIC_AUTH" in launch.env
                assert not any(settings.flower_password in a for a in launch.argv)


def test_the_api_runs_on_httptools_and_uvloop(
    compose: dict[str, Any], secret_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = _launched(compose["services"]["api"], secret_files, monkeypatch).argv
    http, loop = argv[argv.index("--http") + 1], argv[argv.index("--loop") + 1]
    assert (http, loop) == ("httptools", "uvloop")
    # What uvicorn makes of them here: both installed, neither h11 nor asyncio under a name.
    config = uvicorn.Config(lambda *_: None, http=http, loop=loop)
    config.load()
    assert config.http_protocol_class.__module__ == "uvicorn.protocols.http.httptools_impl"
    factory = config.get_loop_factory()
    assert factory is not None
    event_loop = factory()
    try:
        assert type(event_loop).__module__.startswith("uvloop")
    finally:
        event_loop.close()


def test_services_get_only_the_secrets_they_use(
    compose: dict[str, Any], secret_files: dict[str, Path]
) -> None:
    services = compose["services"]
    mounted = {name: set(svc.get("secrets") or []) for name, svc in services.items()}
    assert mounted["postgres"] == {"postgres_password"}
    assert mounted["flower"] == {"flower_password"}
    assert mounted["redis"] == set()
    assert mounted["fakezoom"] == set()
    assert [n for n, m in mounted.items() if "admin_api_key" in m] == ["api"]
    assert {n for n, m in mounted.items() if "encryption_key" in m} == {
        "api", "worker-tests", "worker-sync", "beat", "migrate"}
    values = {name: path.read_text().strip() for name, path in secret_files.items()}
    for name, svc in services.items():
        env = _service_env(svc, secret_files)
        settings = _settings_of(env) if str(svc.get("image", "")).startswith(IMAGE) else None
        text = repr(env) + repr(svc.get("command"))
        for secret, value in values.items():
            # No secret value in any environment or command line, only file paths.
            assert value not in text, f"{name}: {secret} in its environment"
            if settings is not None and secret not in mounted[name]:
                assert value not in repr(settings.model_dump()), f"{name} can read {secret}"
        if name in {"postgres", "flower", "fakezoom", "redis"} and settings is not None:
            assert not settings.encryption_key, name
            assert not settings.admin_api_key, name


def test_deploy_env_example_holds_no_secret() -> None:
    values, _ = _example()
    for key in set(values) - {"SECRETS_DIR"}:
        assert not re.search(r"PASSWORD|SECRET|ENCRYPTION_KEY|API_KEY", key), \
            f"{key}: a secret belongs in ./secrets/, not in deploy.env"
    ignored = (ROOT / ".gitignore").read_text().split()
    assert "secrets/" in ignored
    assert "deploy.env" in ignored
    assert "secrets" in (ROOT / ".dockerignore").read_text().split()


def test_every_service_has_a_memory_limit_and_rotated_logs(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        assert re.fullmatch(r"\d+[mg]", str(svc.get("mem_limit", ""))), f"{name}: mem_limit"
        logging = svc.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert re.fullmatch(r"\d+[km]", logging["options"]["max-size"]), name
        assert int(logging["options"]["max-file"]) >= 1, name
    redis_max = " ".join(compose["services"]["redis"]["command"])
    assert "--maxmemory 1gb" in redis_max
    assert compose["services"]["redis"]["mem_limit"] == "1536m"


def _beat_health(data_dir: Path, compose: dict[str, Any]) -> int:
    test = compose["services"]["beat"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    code = test[3].replace("/data/", f"{data_dir}/")
    return subprocess.run([sys.executable, "-c", code], timeout=60).returncode


def test_beat_healthcheck_tells_a_ticking_beat_from_a_stalled_one(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    command = compose["services"]["beat"]["command"]
    schedule = Path(command[command.index("--schedule-file") + 1])
    assert schedule.parent == Path("/data")
    assert _beat_health(tmp_path, compose) == 1, "no schedule file yet: not healthy"
    # Whatever suffix the dbm module adds, as Celery's shelve writes it.
    with shelve.open(str(tmp_path / schedule.name)) as db:
        db["entries"] = {}
    assert _beat_health(tmp_path, compose) == 0
    stale = time.time() - 11 * 60
    for path in tmp_path.glob(f"{schedule.name}*"):
        os.utime(path, (stale, stale))
    assert _beat_health(tmp_path, compose) == 1


def test_flower_state_file_is_named_as_configured(
    compose: dict[str, Any], secret_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    flower = compose["services"]["flower"]
    launch = _launched(flower, secret_files, monkeypatch)
    db_arg = next(a for a in launch.argv if a.startswith("--db="))
    configured = flower["command"][flower["command"].index("--persistent-db") + 1]
    assert configured == "/data/flower.db"
    # Flower opens the state with shelve: the file on disk must be flower.db, not flower.db.db.
    name = db_arg.removeprefix("--db=").replace("/data/", f"{tmp_path}/")
    with shelve.open(name) as state:
        state["events"] = []
    assert (tmp_path / "flower.db").exists() or (tmp_path / "flower.db.dat").exists()
    assert not list(tmp_path.glob("flower.db.db*"))


def test_compose_states_the_version_it_needs() -> None:
    head = (ROOT / "compose.yaml").read_text().split("\nname:")[0]
    assert re.search(r"Docker Compose v2\.24\.0 or later", head)
    assert "required:" in (ROOT / "compose.yaml").read_text()


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
                assert condition == "service_completed_successfully"
                assert dep == "migrate"
    for name in ("api", "worker-tests", "worker-sync", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        ), name
    for name in ("postgres", "redis", "api", "worker-tests", "worker-sync", "beat", "flower"):
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
    # No anonymous volume per container: the services that keep state name their volume.
    assert not re.search(r"^VOLUME\b", text, re.M)
    assert "COPY migrations" in text
    assert "COPY alembic.ini" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "deploy.env" in ignored
    assert ".env" in ignored


def test_flower_db_name_for_each_dbm_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where gdbm is missing, ndbm appends .db itself: the launcher gives it the bare name."""
    import types

    monkeypatch.setitem(sys.modules, "dbm.gnu", None)  # type: ignore[arg-type]
    monkeypatch.setitem(sys.modules, "dbm.ndbm", types.ModuleType("dbm.ndbm"))
    assert launchers.shelve_name("/data/flower.db") == "/data/flower"
    monkeypatch.setitem(sys.modules, "dbm.gnu", types.ModuleType("dbm.gnu"))
    assert launchers.shelve_name("/data/flower.db") == "/data/flower.db"
