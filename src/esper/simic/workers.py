"""Env pools in worker processes (`ProcessEnvPool`) and Ray actors (`simic/ray_pool.py`), both
supervised the same way (issue 11).

Env i lives in worker i mod W. A worker (`EnvWorker`: the same class in a process and in a Ray
actor) loads the task's data once, builds its envs, and answers two requests: reset its envs
from seeds, or step each with an action. Only small picklable records cross (`Observation`,
`StepResult`, with the steps' telemetry records inside), so an episode in a worker is the episode
the local pool plays: same seeds and actions, same outcomes and events, bit for bit on CPU (each
env's randomness is its own, `HostSession`).

Supervision (`SupervisedPool`). Every request waits on the workers' answers and on their deaths,
up to a deadline. A worker that dies (SIGKILL, a segfault, the OOM killer, a lost node) or misses
the deadline is killed and replaced, and the episodes of its envs are replayed from their seeds
through the actions they were given this episode: the answer is then the one the failed worker
would have given, so the round does not change. Each replacement is reported as a `WorkerEvent`;
after `max_failures` consecutive failures of one worker's envs the pool raises `WorkerError`
naming the envs and the cause. An exception inside a worker (a bug, an illegal action) is not a
failure to retry: it is raised here, as a local env would raise it.

Worker processes are forked on CPU (they start in milliseconds with what this process imported;
PyTorch's DataLoader forks its workers the same way) and start from a fork server once CUDA is
involved (a forked CUDA context is unusable), else by `spawn`.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any, Generic, TypeVar

from esper.leyline import FactoredAction, WorkerEvent
from esper.simic.env_pool import InFlight, StepResult, lockstep, step_result
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.episodes import EpisodeRecord, run_episodes
from esper.tamiyo.features import FeatureSpec, Observation
from esper.tolaria import DataOptions, Task, get_task
from esper.tolaria.data import DataSplits

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
class ControllerJob:
    """Every episode of one controller, on these seeds, one after another: a controller that
    carries state from episode to episode (the random one's generator) plays them in order, as
    in this process."""

    spec: Any  # a simic.evaluation ControllerSpec
    env_config: EnvConfig
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class WorkerFailure:
    """An exception raised inside a worker, sent back as text (the exception may not pickle)."""

    kind: str
    message: str
    traceback: str

    @staticmethod
    def of(error: BaseException) -> WorkerFailure:
        return WorkerFailure(type(error).__name__, str(error), traceback.format_exc())


class EnvWorker:
    """One worker's envs: built from a `WorkerSpec`, answering `serve(op, payload)`."""

    def __init__(self, spec: WorkerSpec) -> None:
        import torch

        torch.set_num_threads(spec.threads)
        self._spec = spec
        self._loaded: dict[str, tuple[Task, DataSplits]] = {}
        if not spec.envs:  # a worker for whole episodes (`run_jobs`): the task's data now
            self._load(spec.task)
        self.envs = {
            i: MorphogeneticEnv(*self._load(config.task or spec.task), config)
            for i, config in spec.envs.items()
        }

    def _load(self, name: str) -> tuple[Task, DataSplits]:
        """A task and its data, loaded once per worker (envs of a run over several tasks)."""
        if name not in self._loaded:
            task = get_task(name)
            self._loaded[name] = task, task.load(self._spec.data)
        return self._loaded[name]

    def feature_spec(self) -> dict[int, FeatureSpec]:
        """Each env's feature spec (none for a worker that serves only jobs)."""
        return {i: env.feature_spec for i, env in self.envs.items()}

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        """Where this worker runs: its Ray node's id in a Ray actor, else the host's name."""
        with contextlib.suppress(ImportError):
            import ray

            if ray.is_initialized():
                node: str = ray.get_runtime_context().get_node_id()
                return node
        return socket.gethostname()

    def _play(self, job: ControllerJob) -> tuple[EpisodeRecord, ...]:
        """One controller's episodes, in seed order, in a fresh env: what `evaluate` plays."""
        from esper.simic.evaluation.controllers import build_policy

        env = MorphogeneticEnv(*self._load(job.env_config.task or self._spec.task), job.env_config)
        policy = build_policy(job.spec, env)
        return tuple(run_episodes(policy, [env], job.seeds))

    def _reset(self, env: int, seed: int) -> Observation:
        observation: Observation = self.envs[env].reset(seed=seed)[1]["observation"]
        return observation

    def serve(self, op: str, payload: dict[int, Any]) -> tuple[str, Any]:
        """("ok", answers by env) or ("error", WorkerFailure): an exception is an answer."""
        try:
            if op == "reset":
                envs = self.envs
                return "ok", {
                    i: envs[i].reset(seed=s)[1]["observation"] for i, s in payload.items()
                }
            if op == "step":
                return "ok", {i: step_result(self.envs[i], a) for i, a in payload.items()}
            if op == "jobs":
                return "ok", {j: self._play(job) for j, job in payload.items()}
            raise ValueError(f"unknown worker request {op!r}")
        except Exception as error:
            return "error", WorkerFailure.of(error)


def default_workers(n_envs: int) -> int:
    """The machine's cores this process may use, at most one worker per env."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_envs))


def worker_specs(
    task: str, data: DataOptions, env_configs: Sequence[EnvConfig], workers: int, threads: int
) -> list[WorkerSpec]:
    """Env i to worker i mod W (W at most the env count). Without envs: W workers that serve
    only `run_jobs`."""
    n = len(env_configs)
    if workers < 1:
        raise ValueError(f"need at least one worker, got {workers}")
    if n == 0:
        return [WorkerSpec(task, data, {}, threads) for _ in range(workers)]
    w = min(workers, n)
    return [
        WorkerSpec(task, data, {i: env_configs[i] for i in range(k, n, w)}, threads)
        for k in range(w)
    ]


class _Died(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


W = TypeVar("W")


class SupervisedPool(ABC, Generic[W]):
    """The `EnvPool` interface over workers of some kind (`W`), with the supervision of the
    module docstring. A subclass says how to start, ask, wait on and stop one worker.

    A worker may have several requests in flight (one step of each of its envs): it answers
    them in the order they were sent, and each answer is due `deadline_s` after the one before
    it (or after the request, when the worker was idle)."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_failures: int = DEFAULT_MAX_FAILURES,
    ) -> None:
        self._specs = specs
        self.n_envs = sum(len(s.envs) for s in specs)
        self.deadline_s, self.max_failures = deadline_s, max_failures
        self._workers: list[W] = []
        self._worker_of = {env: k for k, spec in enumerate(specs) for env in spec.envs}
        # requests in flight per worker, oldest first: (op, payload, seconds allowed)
        self._queues: list[deque[tuple[str, Any, float]]] = [deque() for _ in specs]
        self._deadlines = [0.0] * len(specs)  # when the oldest one's answer is due (monotonic)
        self._failures = [0] * len(specs)
        self._seeds: dict[int, int] = {}
        self._actions: dict[int, list[FactoredAction]] = {}  # this episode's, per env
        self._in_flight = InFlight()
        self._done: deque[tuple[int, StepResult]] = deque()  # answered, not yet handed out
        self._events: list[tuple[int, WorkerEvent]] = []
        try:
            self._workers = [self._start(k) for k in range(len(specs))]
            ready = [self._await_ready(k) for k in range(len(specs))]
        except _Died as died:
            self.close()
            raise WorkerError(f"an env worker did not start: {died.cause}") from None
        except BaseException:
            self.close()
            raise
        by_env = {i: spec for answer in ready for i, spec in answer.items()}
        self.feature_specs: list[FeatureSpec] = [by_env[i] for i in range(self.n_envs)]
        # None in a pool that serves only jobs
        self.feature_spec: FeatureSpec = self.feature_specs[0] if self.feature_specs else None  # type: ignore[assignment]

    # -- what a kind of worker must provide ----------------------------------------------------

    @abstractmethod
    def _start(self, index: int) -> W:
        """Start worker `index` (it builds the envs of `self._specs[index]`)."""

    @abstractmethod
    def _submit(self, index: int, op: str, payload: Any) -> None:
        """Ask worker `index` (op "ready": its feature spec); never raises for a dead one."""

    @abstractmethod
    def _wait(self, indices: list[int], timeout_s: float) -> dict[int, Any]:
        """The oldest unread answer of each of these workers that came within `timeout_s`:
        index -> `serve`'s pair (or the feature spec), or a str naming why the worker is gone."""

    @abstractmethod
    def _stop(self, index: int, *, kill: bool) -> None:
        """Stop worker `index`: politely, or killed at once (its unread answers are lost)."""

    # -- the EnvPool interface -------------------------------------------------------------------

    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        """Reset the first len(seeds) envs (all of them in training; fewer for the last batch
        of a heuristic run); the others wait until the next reset."""
        if not 1 <= len(seeds) <= self.n_envs:
            raise ValueError(f"need 1 to {self.n_envs} seeds, got {len(seeds)}")
        self._in_flight.start(len(seeds))
        self._seeds = dict(enumerate(seeds))
        self._actions = {i: [] for i in self._seeds}
        pending = [k for k in range(len(self._workers)) if self._live(k)]
        for index in pending:
            self._ask(index, "reset", {i: self._seeds[i] for i in self._live(index)})
        answers: dict[int, Observation] = {}
        while pending:
            for index, answer in self._gather(pending).items():
                if isinstance(answer, str):  # the worker failed: this is the cause
                    self._replace(index, answer)  # its replacement is asked again
                    continue
                answers.update(answer[1])
                self._failures[index] = 0
                pending.remove(index)
        return [answers[i] for i in range(len(seeds))]

    def submit(self, env: int, action: FactoredAction) -> None:
        self._in_flight.add(env)
        self._actions[env].append(action)
        self._ask(self._worker_of[env], "step", {env: action})

    def next_result(self) -> tuple[int, StepResult]:
        self._in_flight.check_some()
        while not self._done:
            busy = [k for k, queue in enumerate(self._queues) if queue]
            for index, answer in self._gather(busy).items():
                if isinstance(answer, str):
                    self._replace(index, answer)  # its steps in flight are asked again
                    continue
                self._failures[index] = 0
                self._done.extend(answer[1].items())
        env, result = self._done.popleft()
        self._in_flight.envs.discard(env)
        return env, result

    def step(self, actions: Sequence[FactoredAction]) -> list[StepResult]:
        self._in_flight.check_count(len(actions))
        return lockstep(self, actions)

    def _live(self, index: int) -> tuple[int, ...]:
        """Worker `index`'s envs in this episode."""
        return tuple(i for i in self._envs(index) if i in self._seeds)

    def run_jobs(self, jobs: Sequence[ControllerJob], steps_each: int) -> list[Any]:
        """Each job to the next free worker; the answers in job order. A job may take
        `steps_each` times the deadline of one step; a failed worker's job is given to its
        replacement, whole."""
        results: list[Any] = [None] * len(jobs)
        todo = list(range(len(jobs)))[::-1]
        busy: dict[int, int] = {}  # worker -> the job it plays
        allowed_s = self.deadline_s * max(1, steps_each)

        def give(index: int) -> None:
            if todo:
                busy[index] = todo.pop()
                self._ask(index, "jobs", {busy[index]: jobs[busy[index]]}, allowed_s)

        for index in range(len(self._workers)):
            give(index)
        while busy:
            for index, answer in self._gather(list(busy)).items():
                if isinstance(answer, str):
                    self._replace(index, answer)  # its replacement plays the job again
                    continue
                job = busy.pop(index)
                results[job] = answer[1][job]
                self._failures[index] = 0
                give(index)
        return results

    def take_events(self) -> list[tuple[int, WorkerEvent]]:
        """Replacements since the last call, as (first env of the worker, event)."""
        events, self._events = self._events, []
        return events

    def close(self) -> None:
        for index in range(len(self._workers)):
            with contextlib.suppress(Exception):  # already gone
                self._stop(index, kill=False)
        self._workers = []

    # -- requests and supervision ----------------------------------------------------------------

    def _envs(self, index: int) -> tuple[int, ...]:
        return tuple(self._specs[index].envs)

    def _ask(self, index: int, op: str, payload: Any, allowed_s: float | None = None) -> None:
        allowed = self.deadline_s if allowed_s is None else allowed_s
        queue = self._queues[index]
        if not queue:
            self._deadlines[index] = time.monotonic() + allowed
        queue.append((op, payload, allowed))
        self._submit(index, op, payload)

    def _gather(self, pending: list[int]) -> dict[int, Any]:
        """The next answers of these workers (each with a request in flight): index -> the
        answer to its oldest request (taken off its queue), or the cause of the worker's
        failure (a str; the queue then holds the requests it lost)."""
        due = min(self._deadlines[k] for k in pending)
        results = self._wait(pending, max(0.0, due - time.monotonic()))
        now = time.monotonic()
        for index in pending:
            if index not in results and self._deadlines[index] <= now:
                results[index] = f"no answer within {self._queues[index][0][2]:g} s"
        for index, answer in results.items():
            if isinstance(answer, str):
                continue
            queue = self._queues[index]
            queue.popleft()
            if queue:
                self._deadlines[index] = now + queue[0][2]
            if isinstance(answer, tuple) and answer[0] == "error":
                failure: WorkerFailure = answer[1]
                raise RuntimeError(
                    f"env worker {index} (envs {list(self._envs(index))}) raised "
                    f"{failure.kind}: {failure.message}\n--- in the worker:\n{failure.traceback}"
                )
        return results

    def _replace(
        self, index: int, cause: str, lost: list[tuple[str, Any, float]] | None = None
    ) -> None:
        """Kill worker `index`, start another with the same envs, replay their episodes and
        ask it again what the failed one had not answered (`lost`: its queue)."""
        if lost is None:
            lost = list(self._queues[index])
        self._queues[index].clear()
        with contextlib.suppress(Exception):
            self._stop(index, kill=True)
        self._failures[index] += 1
        failures = self._failures[index]
        envs = self._envs(index)
        if failures > self.max_failures:
            raise WorkerError(
                f"envs {list(envs)} failed {failures} times in a row (worker {index}, last: "
                f"{cause}); the run stops"
            )
        self._workers[index] = self._start(index)
        unanswered = {env for op, payload, _ in lost if op == "step" for env in payload}
        try:
            self._await_ready(index)
            replayed = self._replay(index, unanswered)
        except _Died as died:
            self._replace(index, died.cause, lost)
            return
        first = envs[0] if envs else 0
        self._events.append((first, WorkerEvent(index, envs, cause, failures, replayed)))
        for op, payload, allowed_s in lost:
            self._ask(index, op, payload, allowed_s)

    def _replay(self, index: int, unanswered: set[int]) -> int:
        """Bring a fresh worker's envs to where the failed one had them: reset from this
        episode's seeds, then every step it answered (not those in `unanswered`, still in
        flight: they are asked again). Returns the steps replayed (of the env furthest on)."""
        envs = self._live(index)
        if not envs:
            return 0
        self._call(index, "reset", {i: self._seeds[i] for i in envs}, self.deadline_s)
        answered = {i: len(self._actions[i]) - (i in unanswered) for i in envs}
        steps = max(answered.values())
        for t in range(steps):
            actions = {i: self._actions[i][t] for i in envs if t < answered[i]}
            self._call(index, "step", actions, self.deadline_s)
        return steps

    def _await_ready(self, index: int) -> dict[int, FeatureSpec]:
        specs: dict[int, FeatureSpec] = self._call(
            index, "ready", None, max(self.deadline_s, START_DEADLINE_S)
        )
        return specs

    def _call(self, index: int, op: str, payload: Any, allowed_s: float) -> Any:
        """One request to one idle worker; raises _Died with the cause if it fails."""
        self._ask(index, op, payload, allowed_s)
        answers: dict[int, Any] = {}
        while not answers:
            answers = self._gather([index])
        answer = answers[index]
        if isinstance(answer, str):
            raise _Died(answer)
        return answer[1] if op != "ready" else answer


# -- worker processes ----------------------------------------------------------------------------


def worker_main(conn: multiprocessing.connection.Connection, spec: WorkerSpec) -> None:
    """A worker process's life: build the envs, then answer requests until told to stop."""
    try:
        worker = EnvWorker(spec)
    except Exception as error:
        conn.send(("error", WorkerFailure.of(error)))
        return
    while True:
        try:
            op, payload = conn.recv()
        except EOFError:  # the pool is gone
            return
        if op == "close":
            return
        conn.send(worker.feature_spec() if op == "ready" else worker.serve(op, payload))


# Imported before any worker starts, so that every worker has them already: torch and esper, the
# lazy torch._dynamo import of the first optimizer a process builds (~2 s here) and the data
# loaders' sklearn. A module that is not installed is skipped.
_PRELOAD = ["esper.simic.workers", "torch._dynamo", "sklearn.datasets"]


def _context(device: str) -> BaseContext:
    """`fork` for CPU runs on platforms that have it (a worker starts in milliseconds with
    everything this process imported and loaded; PyTorch's own DataLoader forks the same way),
    `forkserver` once CUDA is in use or asked for (a forked CUDA context is unusable), else
    `spawn`."""
    import torch

    methods = multiprocessing.get_all_start_methods()
    uses_cuda = device.startswith("cuda") or torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    if "fork" in methods and not uses_cuda:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        return context
    return multiprocessing.get_context("spawn")


def warm_up(device: str = "cpu") -> None:
    """Do now what every worker would otherwise do first: the imports (forked workers inherit
    them), or start the fork server (its imports then overlap what this process does before
    it asks for workers: loading data, making the run directory)."""
    context = _context(device)
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()
        return
    for module in _PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(module)


@dataclass
class _Process:
    process: BaseProcess
    conn: multiprocessing.connection.Connection


class ProcessEnvPool(SupervisedPool[_Process]):
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
        device: str = "cpu",
    ) -> None:
        self._context = _context(device)
        warm_up(device)
        specs = worker_specs(task, data, env_configs, workers, threads)
        super().__init__(specs, deadline_s, max_failures)

    def pid(self, index: int) -> int | None:
        """Worker `index`'s process id (tests kill it)."""
        return self._workers[index].process.pid

    def _start(self, index: int) -> _Process:
        conn, child = self._context.Pipe()
        process: BaseProcess = self._context.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child, self._specs[index]),
            name=f"esper-worker-{index}",
            daemon=True,
        )
        process.start()
        child.close()
        return _Process(process, conn)

    def _submit(self, index: int, op: str, payload: Any) -> None:
        with contextlib.suppress(OSError, ValueError):  # a dead worker: _wait tells
            self._workers[index].conn.send((op, payload))

    def _wait(self, indices: list[int], timeout_s: float) -> dict[int, Any]:
        by_handle: dict[Any, int] = {}
        for index in indices:
            worker = self._workers[index]
            by_handle[worker.conn] = index
            by_handle[worker.process.sentinel] = index
        ready = multiprocessing.connection.wait(list(by_handle), timeout=timeout_s)
        results: dict[int, Any] = {}
        for handle in ready:
            index = by_handle[handle]
            if index not in results:
                results[index] = self._receive(self._workers[index])
        return results

    @staticmethod
    def _receive(worker: _Process) -> Any:
        if worker.conn.poll():
            with contextlib.suppress(EOFError, OSError):
                return worker.conn.recv()
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

    def _stop(self, index: int, *, kill: bool) -> None:
        worker = self._workers[index]
        if not kill:
            with contextlib.suppress(OSError, ValueError):
                worker.conn.send(("close", None))
            worker.process.join(timeout=10)
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()
