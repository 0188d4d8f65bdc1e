"""One readable line and a non-zero exit for every mistake an operator can make.

Commands are wrapped in `friendly`: user mistakes (`CliError`), bad settings and unreachable
services become one line on stderr; only genuine bugs keep their traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError, ProgrammingError

from worker.kit.crypto import CredentialsUnreadable
from worker.settings import SettingsError

P = ParamSpec("P")
R = TypeVar("R")

# Exit codes: 1 the thing asked for failed (a test failed, a run failed); 2 a usage or settings
# mistake; 3 a service (database, broker) is unreachable.
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


class CliError(Exception):
    """A mistake the operator can fix; the message says how."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    typer.secho(f"activity-insights: {message}", err=True, fg="red")
    return typer.Exit(code)


def _database_hint(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else ""
    lowered = text.lower()
    if "no such table" in lowered or ("relation" in lowered and "does not exist" in lowered):
        return "the database has no schema yet: run `activity-insights db upgrade`"
    return f"cannot use the database (AI_DATABASE_URL): {text[:200]}"


def describe(exc: BaseException) -> tuple[str, int] | None:
    """The one line and exit code for an expected failure, or None for a bug."""
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, SettingsError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, CredentialsUnreadable):
        return str(exc), EXIT_USAGE
    if isinstance(exc, OperationalError | ProgrammingError):
        hint = _database_hint(exc)
        return hint, EXIT_USAGE if "db upgrade" in hint else EXIT_UNAVAILABLE
    if isinstance(exc, KombuOperationalError | RedisConnectionError | RedisTimeoutError):
        return (
            f"cannot reach Redis / the broker (AI_REDIS_URL, AI_BROKER_URL): {exc}",
            EXIT_UNAVAILABLE,
        )
    return None


def friendly(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures of a command into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise typer.Exit(130) from None
        except Exception as exc:
            described = describe(exc)
            if described is None:
                raise
            message, code = described
            raise fail(message, code) from None

    return wrapper
