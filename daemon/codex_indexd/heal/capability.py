"""What a `codex` binary's app-server can do, read from the protocol schema it prints.

`codex app-server generate-json-schema --out DIR` writes `ClientRequest.json`: one `oneOf`
branch per request method, each naming its params type under `definitions`. Healing needs
some of those methods and parameters (`NEEDED`); whether they are there decides whether
healing runs, not the version number. The answer is cached per binary (real path, inode,
mtime, size), so a daemon asks each binary once.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codex_indexd.heal.child import AppServerError, run_bounded
from codex_indexd.records import field, record

NEEDED: dict[str, frozenset[str]] = {
    "thread/list": frozenset(
        {"useStateDbOnly", "sourceKinds", "modelProviders", "archived", "cursor", "limit"}
    ),
    "thread/name/set": frozenset({"threadId", "name"}),
}
"""Methods healing calls, and the parameters of each it sends."""
OPTIONAL: dict[str, frozenset[str]] = {
    "thread/metadata/update": frozenset({"threadId"}),
}
"""Methods healing uses when present (a lighter heal for a few missing rows)."""
SCHEMA_TIMEOUT_S = 20.0
_OUTPUT_LIMIT = 1 << 16

BinaryKey = tuple[str, int, int, int]
_CACHE: dict[BinaryKey, Capabilities] = {}


@record(frozen=True, slots=True)
class Capabilities:
    """Request methods (with their parameter names) and source kinds a binary's app-server has."""

    methods: dict[str, frozenset[str]] = field(default_factory=dict)
    source_kinds: tuple[str, ...] = ()

    def missing(self, needed: Mapping[str, frozenset[str]] = NEEDED) -> list[str]:
        """Return what is missing, as `method` or `method(param)` strings, sorted."""
        out: list[str] = []
        for method, params in sorted(needed.items()):
            have = self.methods.get(method)
            if have is None:
                out.append(method)
                continue
            out.extend(f"{method}({param})" for param in sorted(params - have))
        return out

    def has(self, method: str, params: frozenset[str] = frozenset()) -> bool:
        """True when `method` exists and takes every one of `params`."""
        have = self.methods.get(method)
        return have is not None and params <= have


def _resolve(definitions: Mapping[str, Any], node: Any) -> dict[str, Any]:
    """Follow `$ref`s (and one `anyOf`/`allOf` level) to an object schema; {} when none."""
    for _ in range(8):
        if not isinstance(node, dict):
            return {}
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            node = definitions.get(ref.rsplit("/", 1)[-1])
            continue
        for key in ("allOf", "anyOf", "oneOf"):
            options = node.get(key)
            if isinstance(options, list):
                objects = [_resolve(definitions, o) for o in options]
                merged: dict[str, Any] = {}
                for obj in objects:
                    merged.update(obj.get("properties") or {})
                return {"properties": merged}
        return node
    return {}


def parse_schema(client_request: Mapping[str, Any]) -> Capabilities:
    """Return the capabilities `ClientRequest.json` describes (tolerant of unknown shapes)."""
    definitions = client_request.get("definitions")
    definitions = definitions if isinstance(definitions, dict) else {}
    methods: dict[str, frozenset[str]] = {}
    for branch in client_request.get("oneOf") or ():
        props = branch.get("properties") if isinstance(branch, dict) else None
        if not isinstance(props, dict):
            continue
        method_schema = props.get("method")
        if not isinstance(method_schema, dict):
            continue
        names = method_schema.get("enum") or [method_schema.get("const")]
        params = _resolve(definitions, props.get("params"))
        param_names = frozenset(str(p) for p in (params.get("properties") or {}))
        for name in names:
            if isinstance(name, str):
                methods[name] = param_names
    kinds = definitions.get("ThreadSourceKind")
    enum = kinds.get("enum") if isinstance(kinds, dict) else None
    source_kinds = tuple(k for k in enum if isinstance(k, str)) if isinstance(enum, list) else ()
    return Capabilities(methods=methods, source_kinds=source_kinds)


def _run_schema(binary: str, out_dir: Path, env: Mapping[str, str], timeout_s: float) -> str:
    """Run the schema generator into `out_dir`; return its stderr tail. Raises AppServerError."""
    child_env = dict(env)
    child_env["CODEX_HOME"] = str(out_dir.parent)  # a scratch home: nothing lands in a real one
    command = f"'{binary} app-server generate-json-schema'"
    status, err = run_bounded(
        [binary, "app-server", "generate-json-schema", "--out", str(out_dir)],
        what=f"{command} did not finish",
        env=child_env,
        timeout_s=timeout_s,
        read_stderr=True,
        cwd=out_dir.parent,
        limit=_OUTPUT_LIMIT,
        grace_s=5.0,
    )
    if status != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise AppServerError("exited", f"{command} failed (exit {status}): {tail[0][:200]}")
    return err.decode("utf-8", "replace")


def binary_key(path: str) -> BinaryKey | None:
    """The cache key of a binary (real path, inode, mtime, size), or None when it is gone."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return None
    return real, st.st_ino, st.st_mtime_ns, st.st_size


def probe(
    binary: str, *, env: Mapping[str, str] | None = None, timeout_s: float = SCHEMA_TIMEOUT_S
) -> Capabilities:
    """Return what `binary`'s app-server can do, from its schema (cached per binary).

    Raises AppServerError when the binary cannot run, hangs, fails, or prints no readable
    schema (`protocol`).
    """
    key = binary_key(binary)
    if key is not None and key in _CACHE:
        return _CACHE[key]
    environ = dict(os.environ if env is None else env)
    with tempfile.TemporaryDirectory(prefix="codex-indexd-schema-") as scratch:
        out_dir = Path(scratch) / "schema"
        _run_schema(binary, out_dir, environ, timeout_s)
        path = out_dir / "ClientRequest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AppServerError(
                "protocol",
                f"'{binary} app-server generate-json-schema' wrote no readable {path.name}",
            ) from exc
    caps = parse_schema(data if isinstance(data, dict) else {})
    if not caps.methods:
        raise AppServerError("protocol", f"{binary}'s protocol schema lists no request methods")
    if key is not None:
        _CACHE[key] = caps
    return caps


def clear_cache() -> None:
    """Forget every cached answer (tests)."""
    _CACHE.clear()
