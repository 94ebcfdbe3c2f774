"""A fork server for crash tests: `esper` commands in child processes that a test may SIGKILL.

Starting `esper` costs seconds (importing torch); a crash test kills a run a dozen times. This
process imports esper once, then for each request on stdin (one JSON line: `argv`, optional
`fault`, `log`) forks a child that runs `esper.cli.main.main(argv)` with its output in `log`.
It answers `{"pid": N}` when the child starts and `{"pid": N, "status": S}` when it ends (S is
the exit code, or minus the signal that killed it). The server itself never runs torch, so
forking it is safe.

A fault makes the child kill itself (SIGKILL) at a chosen moment instead of at a random time:
- `{"at": "replace", "name": "latest.pt", "nth": k}`: in the k-th atomic write of that file,
  after the temporary file is written and synced, before it is renamed over the target;
- `{"at": "checkpoint", "nth": k}`: after the k-th round's events were committed, before its
  checkpoint is written;
- `{"at": "rollback"}`: inside a resume, after events.jsonl was cut back, before the temporary
  files are removed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import esper.cli.train_ppo as train_ppo
import esper.nissa.atomic as atomic
from esper.cli.main import main


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after_calls(nth: int, real: Callable[..., Any], is_counted: Callable[..., bool]) -> Any:
    calls = 0

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        if is_counted(*args, **kwargs):
            calls += 1
            if calls == nth:
                _die()
        return real(*args, **kwargs)

    return wrapped


def install(fault: dict[str, Any]) -> None:
    at = fault["at"]
    if at == "replace":
        name, real_replace = fault["name"], atomic.os.replace

        class _Os:  # os with a replace that dies on the nth write of `name`
            def __getattr__(self, attr: str) -> Any:
                return getattr(os, attr)

            replace = staticmethod(
                _after_calls(
                    fault["nth"], real_replace, lambda _src, dst: os.path.basename(dst) == name
                )
            )

        atomic.os = _Os()  # type: ignore[assignment]
    elif at == "checkpoint":
        train_ppo.save_checkpoint = _after_calls(  # type: ignore[assignment]
            fault["nth"],
            train_ppo.save_checkpoint,
            lambda path, *_a, **_k: path.name == "latest.pt",
        )
    elif at == "rollback":
        train_ppo.remove_temp_files = _after_calls(  # type: ignore[assignment]
            1, train_ppo.remove_temp_files, lambda *_a: True
        )
    else:
        raise ValueError(f"unknown fault {fault!r}")


def _child(request: dict[str, Any]) -> None:
    with open(request["log"], "a", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    sys.stdout = os.fdopen(1, "w", closefd=False)
    sys.stderr = os.fdopen(2, "w", closefd=False)
    code = 1
    try:
        if request.get("fault"):
            install(request["fault"])
        code = main(request["argv"])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"pid": pid, "status": code}), flush=True)


if __name__ == "__main__":
    serve()
