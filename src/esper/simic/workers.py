"""`ProcessEnvPool`: the envs of a round in worker processes, supervised (issue 11).

Env i lives in worker i mod W. A worker loads the task's data once, builds its envs, and then
answers two requests: reset its envs from seeds, or step each with an action. Only small
picklable records cross (`Observation`, `StepResult`, with the steps' telemetry records inside),
so an episode in a worker is the episode the local pool plays: same seeds and actions, same
outcomes and events, bit for bit on CPU (each env's randomness is its own, `HostSession`).

Supervision. Every request waits on the workers' answers and on their process sentinels, up to
a deadline. A worker that dies (SIGKILL, a segfault, the OOM killer) or misses the deadline is
killed and replaced, and the episodes of its envs are replayed from their seeds through the
actions they were given this episode: the answer to the request is then the one the dead worker
would have given, so the round does not change. Each replacement is reported as a
`WorkerEvent`; after `max_failures` consecutive failures of one worker's envs the pool raises
`WorkerError` naming the envs and the cause. An exception inside a worker (a bug, an illegal
action) is not a failure to retry: it is raised here, as it would be by a local env.

Workers start with `forkserver` where the platform has it (a fork of a clean server process
that imported torch once: fast, and safe with CUDA), else `spawn`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from esper.leyline import FactoredAction, WorkerEvent
from esper.simic.env_pool import StepResult, step_result
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.tamiyo.features import FeatureSpec, Observation
from esper.tolaria import DataOptions, get_task

DEFAULT_DEADLINE_S = 900.0  # one env step is one host epoch; a CPU epoch of a big task is minutes
DEFAULT_MAX_FAILURES = 3
START_DEADLINE_S = 300.0  # a worker imports torch and loads the task's data before answering


class WorkerError(RuntimeError):
    """Envs whose worker kept failing; the message names them and the last cause."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to build its envs: everything is picklable and small."""

    task: str
    data: DataOptions
    envs: dict[int, EnvConfig]  # env index -> its settings
    threads: int


@dataclass(frozen=True)
class _Failure:
    """An exception raised inside a worker, sent back as text (it may not pickle)."""

    kind: str
    message: str
    traceback: str


def worker_main(conn: multiprocessing.connection.Connection, spec: WorkerSpec) -> None:
    """A worker's life: build the envs, then answer requests until told to stop."""
    import torch

    torch.set_num_threads(spec.threads)
    try:
        task = get_task(spec.task)
        data = task.load(spec.data)
        envs = {i: MorphogeneticEnv(task, data, config) for i, config in spec.envs.items()}
        conn.send(("ready", next(iter(envs.values())).feature_spec))
    except Exception as error:
        conn.send(("error", _describe(error)))
        return
    while True:
        try:
            request = conn.recv()
        except EOFError:  # the pool is gone
            return
        if request[0] == "close":
            return
        try:
            conn.send(("ok", _serve(envs, request)))
        except Exception as error:
            conn.send(("error", _describe(error)))


def _serve(envs: dict[int, MorphogeneticEnv], request: tuple[Any, ...]) -> Any:
    op, payload = request
    if op == "reset":
        return {i: envs[i].reset(seed=seed)[1]["observation"] for i, seed in payload.items()}
    if op == "step":
        return {i: step_result(envs[i], action) for i, action in payload.items()}
    raise ValueError(f"unknown worker request {op!r}")


def _describe(error: BaseException) -> _Failure:
    return _Failure(type(error).__name__, str(error), traceback.format_exc())


def default_workers(n_envs: int) -> int:
    """The machine's cores this process may use, at most one worker per env."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_envs))


def _context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["esper.simic.workers"])
        return context
    return multiprocessing.get_context("spawn")


class _Worker:
    def __init__(self, context: BaseContext, index: int, spec: WorkerSpec) -> None:
        self.index, self.spec = index, spec
        self.conn, child = context.Pipe()
        self.process: BaseProcess = context.Process(  # type: ignore[attr-defined]
            target=worker_main, args=(child, spec), name=f"esper-worker-{index}", daemon=True
        )
        self.process.start()
        child.close()
        self.deadline = 0.0  # when the answer to the last request is due (monotonic clock)
        self.allowed_s = 0.0  # the seconds it was given

    @property
    def envs(self) -> tuple[int, ...]:
        return tuple(self.spec.envs)

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class ProcessEnvPool:
    """Envs in `workers` worker processes; see the module docstring for supervision.

    Raises:
        WorkerError: a worker failed `max_failures` times in a row, or could not start.
    """

    def __init__(
        self,
        task: str,
        data: DataOptions,
        env_configs: Sequence[EnvConfig],
        workers: int,
        threads: int = 1,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        n_envs = len(env_configs)
        if n_envs < 1 or workers < 1:
            raise ValueError(f"need at least one env and one worker, got {n_envs} and {workers}")
        self.n_envs = n_envs
        self.deadline_s, self.max_failures = deadline_s, max_failures
        self._context = _context()
        workers = min(workers, n_envs)
        self._specs = [
            WorkerSpec(
                task,
                data,
                {i: env_configs[i] for i in range(w, n_envs, workers)},
                threads,
            )
            for w in range(workers)
        ]
        self._workers: list[_Worker] = []
        self._failures = [0] * workers
        self._seeds: dict[int, int] = {}
        self._actions: dict[int, list[FactoredAction]] = {}  # this episode's, per env
        self._events: list[tuple[int, WorkerEvent]] = []
        try:
            self._workers = [_Worker(self._context, w, s) for w, s in enumerate(self._specs)]
            specs = [self._await_ready(worker) for worker in self._workers]
        except _Died as died:
            self.close()
            raise WorkerError(f"an env worker did not start: {died.cause}") from None
        except BaseException:
            self.close()
            raise
        self.feature_spec: FeatureSpec = specs[0]

    # -- the EnvPool interface -------------------------------------------------------------------

    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        if len(seeds) != self.n_envs:
            raise ValueError(f"need {self.n_envs} seeds, got {len(seeds)}")
        self._seeds = dict(enumerate(seeds))
        self._actions = {i: [] for i in range(self.n_envs)}
        answers = self._request("reset", lambda w: {i: self._seeds[i] for i in w.envs})
        return [answers[i] for i in range(self.n_envs)]

    def step(self, actions: Sequence[FactoredAction]) -> list[StepResult]:
        if len(actions) != self.n_envs:
            raise ValueError(f"need {self.n_envs} actions, got {len(actions)}")
        for i, action in enumerate(actions):
            self._actions[i].append(action)
        answers = self._request("step", lambda w: {i: actions[i] for i in w.envs})
        return [answers[i] for i in range(self.n_envs)]

    def take_events(self) -> list[tuple[int, WorkerEvent]]:
        """Replacements since the last call, as (first env of the worker, event)."""
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(OSError, ValueError):  # already gone
                worker.conn.send(("close", None))
        for worker in self._workers:
            worker.process.join(timeout=10)
            worker.kill()
        self._workers = []

    # -- requests and supervision ----------------------------------------------------------------

    def _request(self, op: str, payload_of: Any) -> dict[int, Any]:
        """Send `op` to every worker, gather the answers; replace failed workers and ask again."""
        pending = {w.index: w for w in self._workers}
        for worker in pending.values():
            self._send(worker, op, payload_of(worker))
        answers: dict[int, Any] = {}
        while pending:
            for index, answer in self._gather(pending).items():
                if isinstance(answer, str):  # the worker failed: this is the cause
                    worker = self._replace(pending[index], answer)
                    pending[index] = worker
                    self._send(worker, op, payload_of(worker))
                    continue
                answers.update(answer)
                self._failures[index] = 0
                del pending[index]
        return answers

    def _send(self, worker: _Worker, op: str, payload: Any) -> None:
        worker.allowed_s = self.deadline_s
        worker.deadline = time.monotonic() + self.deadline_s
        with contextlib.suppress(OSError, ValueError):  # a dead worker: _gather tells
            worker.conn.send((op, payload))

    def _gather(self, pending: dict[int, _Worker]) -> dict[int, Any]:
        """The next answers: worker index -> its answer, or the cause of its failure (a str)."""
        by_handle: dict[Any, int] = {}
        for index, worker in pending.items():
            by_handle[worker.conn] = index
            by_handle[worker.process.sentinel] = index
        first_deadline = min(w.deadline for w in pending.values())
        ready = multiprocessing.connection.wait(
            list(by_handle), timeout=max(0.0, first_deadline - time.monotonic())
        )
        results: dict[int, Any] = {}
        for handle in ready:
            index = by_handle[handle]
            if index not in results:
                results[index] = self._answer(pending[index])
        if not ready:
            now = time.monotonic()
            for index, worker in pending.items():
                if worker.deadline <= now:
                    results[index] = f"no answer within {worker.allowed_s:g} s"
        return results

    def _answer(self, worker: _Worker) -> Any:
        if not worker.conn.poll():
            return _exit_cause(worker)
        try:
            status, value = worker.conn.recv()
        except (EOFError, OSError):
            return _exit_cause(worker)
        if status == "error":
            raise RuntimeError(
                f"env worker {worker.index} (envs {list(worker.envs)}) raised {value.kind}: "
                f"{value.message}\n--- in the worker:\n{value.traceback}"
            )
        return value

    def _replace(self, worker: _Worker, cause: str) -> _Worker:
        """Kill `worker`, start another with the same envs and replay their episodes."""
        index = worker.index
        worker.kill()
        self._failures[index] += 1
        failures = self._failures[index]
        if failures > self.max_failures:
            raise WorkerError(
                f"envs {list(worker.envs)} failed {failures} times in a row (worker {index}, "
                f"last: {cause}); the run stops"
            )
        fresh = _Worker(self._context, index, self._specs[index])
        self._workers[index] = fresh
        try:
            self._await_ready(fresh)
            replayed = self._replay(fresh)
        except _Died as died:
            return self._replace(fresh, died.cause)
        self._events.append(
            (fresh.envs[0], WorkerEvent(index, fresh.envs, cause, failures, replayed))
        )
        return fresh

    def _replay(self, worker: _Worker) -> int:
        """Bring a fresh worker's envs to where the failed one had them: reset from this
        episode's seeds, then every step but the one being asked for (the caller asks it)."""
        if not self._seeds:
            return 0
        self._call(worker, "reset", {i: self._seeds[i] for i in worker.envs})
        steps = max(0, len(self._actions[worker.envs[0]]) - 1)
        for t in range(steps):
            self._call(worker, "step", {i: self._actions[i][t] for i in worker.envs})
        return steps

    def _call(self, worker: _Worker, op: str, payload: Any) -> Any:
        """One request to one worker; raises _Died with the cause if it fails."""
        self._send(worker, op, payload)
        answers: dict[int, Any] = {}
        while not answers:
            answers = self._gather({worker.index: worker})
        answer = answers[worker.index]
        if isinstance(answer, str):
            raise _Died(answer)
        return answer

    def _await_ready(self, worker: _Worker) -> FeatureSpec:
        """The worker's first message (its envs' feature spec); raises _Died if it fails."""
        worker.allowed_s = max(self.deadline_s, START_DEADLINE_S)
        worker.deadline = time.monotonic() + worker.allowed_s
        answers: dict[int, Any] = {}
        while not answers:
            answers = self._gather({worker.index: worker})
        answer = answers[worker.index]
        if isinstance(answer, str):
            raise _Died(answer)
        spec: FeatureSpec = answer
        return spec


class _Died(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def _exit_cause(worker: _Worker) -> str:
    worker.process.join(timeout=5)
    code = worker.process.exitcode
    if code is None:
        return "its connection closed"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
