"""Zoom's official OpenAPI 3.0 spec as JSON-Schema validators for response bodies.

The spec is not vendored: it is looked up at $FAKEZOOM_SPEC, then at ../shared/zoom/ beside the
repository. `response_validator("/users")` returns a jsonschema validator for that operation's
200 response, with OpenAPI specifics (`nullable`, `$ref`, `example`, `x-*`) translated.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema

SPEC_NAME = "ZoomMeetingAPISpec.json"


def spec_path() -> Path | None:
    env = os.environ.get("FAKEZOOM_SPEC")
    candidates = [Path(env)] if env else []
    repo = Path(__file__).resolve().parents[1]
    candidates += [repo.parent / "shared" / "zoom" / SPEC_NAME,
                   repo / "shared" / "zoom" / SPEC_NAME]
    return next((p for p in candidates if p.is_file()), None)


@functools.cache
def load_spec() -> dict[str, Any]:
    path = spec_path()
    if path is None:
        raise FileNotFoundError(f"{SPEC_NAME} not found; set FAKEZOOM_SPEC")
    return dict(json.loads(path.read_text()))


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref.lstrip("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def to_json_schema(node: Any, spec: dict[str, Any], depth: int = 0) -> Any:
    """Translate an OpenAPI 3.0 schema object into plain JSON Schema (draft 4 semantics)."""
    if depth > 64:
        return {}
    if isinstance(node, list):
        return [to_json_schema(x, spec, depth + 1) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return to_json_schema(_resolve(spec, node["$ref"]), spec, depth + 1)
    out: dict[str, Any] = {}
    for k, v in node.items():
        if k in ("example", "examples", "nullable", "deprecated", "readOnly", "writeOnly",
                 "xml", "externalDocs", "discriminator") or k.startswith("x-"):
            continue
        if k == "properties":
            out[k] = {name: to_json_schema(s, spec, depth + 1) for name, s in v.items()}
        else:
            out[k] = to_json_schema(v, spec, depth + 1)
    if node.get("nullable"):
        t = out.get("type")
        if isinstance(t, str):
            out["type"] = [t, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE.match(value):
        raise ValueError(f"not a date: {value!r}")
    dt.date.fromisoformat(value)
    return True


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATETIME.match(value):
        raise ValueError(f"not an RFC 3339 date-time: {value!r}")
    dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


@FORMATS.checks("email", raises=ValueError)
def _is_email(value: object) -> bool:
    if isinstance(value, str) and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
        raise ValueError(f"not an email: {value!r}")
    return True


def response_schema(path: str, method: str = "get", status: str = "200") -> dict[str, Any]:
    spec = load_spec()
    op = spec["paths"][path][method.lower()]
    resp = op["responses"][status]
    if "$ref" in resp:
        resp = _resolve(spec, resp["$ref"])
    schema = resp["content"]["application/json"]["schema"]
    return dict(to_json_schema(schema, spec))


def response_validator(path: str, method: str = "get", status: str = "200"
                       ) -> jsonschema.protocols.Validator:
    schema = response_schema(path, method, status)
    return jsonschema.Draft4Validator(schema, format_checker=FORMATS)


def operation_description(path: str, method: str = "get") -> str:
    return str(load_spec()["paths"][path][method.lower()].get("description", ""))


def rate_limit_label(path: str, method: str = "get") -> str | None:
    m = re.search(r"Rate Limit Label.*?`([^`]+)`", operation_description(path, method))
    return m.group(1) if m else None
