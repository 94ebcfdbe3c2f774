"""`RayEnvPool`: the envs of a round in Ray actors (the `ray` extra), supervised like the
process backend (`simic/workers.py`: the same `EnvWorker` class, the same replay of a failed
worker's episodes, the same `WorkerError`).

`ray_address` None starts a local Ray (and stops it at `close`); "auto" or "HOST:PORT" joins a
running cluster (docs/scale-out.md). Each actor asks for `worker_cpus` CPUs and `worker_gpus`
GPUs (fractions allowed), so Ray places them on the nodes that have room. Every node needs
esper installed and, for a task with a data folder, the data at the same path.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

from esper.simic.environment import EnvConfig
from esper.simic.workers import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_FAILURES,
    EnvWorker,
    SupervisedPool,
    worker_specs,
)
from esper.tolaria import DataOptions


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ValueError(
            "backend 'ray' needs Ray: pip install 'esper[ray]' (or use --backend process)"
        ) from None
    return ray


class RayEnvPool(SupervisedPool[Any]):
    """Envs in `workers` Ray actors (None: as many as the cluster's CPUs hold at `cpus` each,
    at most one per env); see `simic/workers.py` for supervision.

    Raises:
        ValueError: Ray is not installed, or the cluster at `address` cannot be reached.
        WorkerError: an actor failed `max_failures` times in a row, or could not start.
    """

    def __init__(
        self,
        task: str,
        data: DataOptions,
        env_configs: Sequence[EnvConfig],
        workers: int | None,
        threads: int = 1,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_failures: int = DEFAULT_MAX_FAILURES,
        address: str | None = None,
        cpus: float = 1.0,
        gpus: float = 0.0,
    ) -> None:
        ray = self._ray = _ray()
        self._started_ray = False
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except (ConnectionError, RuntimeError) as error:
                where = address or "a local Ray"
                raise ValueError(f"cannot start or join Ray at {where}: {error}") from None
            self._started_ray = address is None
        self._actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0)(EnvWorker)
        # worker index -> the ObjectRefs of its answers, oldest first (an actor runs its calls
        # in the order they were made)
        self._pending: dict[int, deque[Any]] = {}
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        specs = worker_specs(task, data, env_configs, workers, threads)
        super().__init__(specs, deadline_s, max_failures)

    def pid(self, index: int) -> int:
        """Actor `index`'s process id (tests kill it)."""
        pid: int = self._ray.get(self._workers[index].pid.remote())
        return pid

    def node(self, index: int) -> str:
        """The id of the Ray node actor `index` runs on."""
        node: str = self._ray.get(self._workers[index].node.remote())
        return node

    def close(self) -> None:
        super().close()
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    def _start(self, index: int) -> Any:
        return self._actor_class.remote(self._specs[index])

    def _submit(self, index: int, op: str, payload: Any) -> None:
        actor = self._workers[index]
        ref = actor.feature_spec.remote() if op == "ready" else actor.serve.remote(op, payload)
        self._pending.setdefault(index, deque()).append(ref)

    def _wait(self, indices: list[int], timeout_s: float) -> dict[int, Any]:
        ray = self._ray
        by_ref = {self._pending[i][0]: i for i in indices}
        ready, _ = ray.wait(list(by_ref), num_returns=1, timeout=timeout_s)
        if ready:  # take every answer already there, not only the first
            ready, _ = ray.wait(list(by_ref), num_returns=len(by_ref), timeout=0)
        results: dict[int, Any] = {}
        for ref in ready:
            index = by_ref[ref]
            self._pending[index].popleft()
            try:
                results[index] = ray.get(ref)
            except ray.exceptions.RayActorError as error:
                results[index] = f"its actor died ({type(error).__name__})"
            except ray.exceptions.RayError as error:  # the node or the object store failed
                results[index] = f"{type(error).__name__}: {str(error).splitlines()[0]}"
        return results

    def _stop(self, index: int, *, kill: bool) -> None:
        with contextlib.suppress(Exception):
            self._ray.kill(self._workers[index], no_restart=True)
        self._pending.pop(index, None)
