"""A stand-in for the `codex` binary, for the app-server client tests.

Behaviour comes from the environment:
FAKE_CODEX_VERSION  what `--version` prints (default "codex-cli 0.169.0"); "hang" never answers
FAKE_CODEX_MODE     ok (names stick: it writes the test DB) | nostick | reject | hang
                    | hang_after_init | exit_on_list | reject_update (thread/metadata/update only)
                    | ask (sends a server request and a notification first)
FAKE_CODEX_LOG      a JSONL file: every message received, one {"pid": …} line per start
FAKE_CODEX_TRAP     "1": ignore SIGTERM (so only SIGKILL ends it)
FAKE_CODEX_SCHEMA   what `app-server generate-json-schema` writes: full (default) | no_name_set
                    | no_state_db_only | no_metadata_update | fail | garbage | new_kind
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time


def log(entry: dict[str, object]) -> None:
    path = os.environ.get("FAKE_CODEX_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def send(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def hang() -> None:
    while True:
        time.sleep(3600)


LIST_PARAMS = [
    "archived",
    "cursor",
    "limit",
    "modelProviders",
    "sourceKinds",
    "useStateDbOnly",
    "cwd",
]
KINDS = ["cli", "vscode", "exec", "appServer", "subAgent", "unknown"]


def write_schema(out_dir: str) -> None:
    """Write a small ClientRequest.json shaped like the one Codex prints."""
    variant = os.environ.get("FAKE_CODEX_SCHEMA", "full")
    log({"schema": variant, "codex_home": os.environ.get("CODEX_HOME")})
    if variant == "fail":
        print("error: unknown subcommand", file=sys.stderr)
        sys.exit(2)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "ClientRequest.json")
    if variant == "garbage":
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("{not json")
        return
    list_params = [
        p for p in LIST_PARAMS if not (variant == "no_state_db_only" and p == "useStateDbOnly")
    ]
    methods: dict[str, dict[str, dict[str, object]]] = {
        "initialize": {"clientInfo": {}},
        "thread/list": {p: {} for p in list_params},
        "thread/name/set": {"threadId": {}, "name": {}},
        "thread/metadata/update": {"threadId": {}, "gitInfo": {}},
    }
    if variant == "no_name_set":
        del methods["thread/name/set"]
    if variant == "no_metadata_update":
        del methods["thread/metadata/update"]
    definitions: dict[str, object] = {
        "ThreadSourceKind": {"enum": KINDS + (["laterKind"] if variant == "new_kind" else [])}
    }
    branches = []
    for i, (method, params) in enumerate(methods.items()):
        definitions[f"Params{i}"] = {"type": "object", "properties": params}
        branches.append(
            {
                "properties": {
                    "id": {},
                    "method": {"enum": [method], "type": "string"},
                    "params": {"$ref": f"#/definitions/Params{i}"},
                }
            }
        )
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"definitions": definitions, "oneOf": branches}, fh)


def main() -> None:
    if os.environ.get("FAKE_CODEX_TRAP") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    args = sys.argv[1:]
    if args == ["--version"]:
        version = os.environ.get("FAKE_CODEX_VERSION", "codex-cli 0.169.0")
        if version == "hang":
            hang()
        print(version, flush=True)
        return
    if args[:2] == ["app-server", "generate-json-schema"]:
        write_schema(args[args.index("--out") + 1])
        return
    assert args == ["app-server"], args
    mode = os.environ.get("FAKE_CODEX_MODE", "ok")
    log({"pid": os.getpid(), "pgid": os.getpgid(0), "codex_home": os.environ.get("CODEX_HOME")})
    if mode == "hang":
        hang()
    initialized = False
    for raw in sys.stdin:
        message = json.loads(raw)
        log(message)
        method = message.get("method")
        if "id" not in message or method is None:
            continue  # a notification, or the reply to our request
        if initialized and mode == "hang_after_init":
            continue
        result: object = {}
        if method == "initialize":
            initialized = True
            if mode == "ask":
                send({"id": 900, "method": "item/commandExecution/requestApproval", "params": {}})
                send({"method": "thread/started", "params": {}})
            result = {"userAgent": "fake/0.169.0", "codexHome": os.environ.get("CODEX_HOME")}
        elif method == "thread/list":
            if mode == "exit_on_list":
                sys.exit(3)
            params = message.get("params") or {}
            cursor = params.get("cursor")
            result = {"data": [{"id": "x"}], "nextCursor": None if cursor else "page-2"}
        elif method == "thread/metadata/update":
            if mode in ("reject", "reject_update"):
                error = {"code": -32600, "message": "no rollout found for thread id"}
                send({"id": message["id"], "error": error})
                continue
        elif method == "thread/name/set":
            params = message.get("params") or {}
            if mode == "reject":
                send(
                    {"id": message["id"], "error": {"code": -32600, "message": "no rollout found"}}
                )
                continue
            if mode == "ok":
                db = os.path.join(os.environ["CODEX_HOME"], "state_5.sqlite")
                conn = sqlite3.connect(db)
                conn.execute(
                    "UPDATE threads SET name = ? WHERE id = ?", (params["name"], params["threadId"])
                )
                conn.commit()
                conn.close()
        send({"id": message["id"], "result": result})


if __name__ == "__main__":
    main()
