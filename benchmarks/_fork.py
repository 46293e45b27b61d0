''' Run one function in N forked processes that start their measured part together.

Used by the many-writers case (``_client.case_writers``) and its floor
(``_floor.floor_writers``). Each worker prepares (connects, pulls, builds
its data) untimed, waits at a barrier, then runs its measured part and
reports ``perf_counter()`` marks. ``time.perf_counter`` is
``CLOCK_MONOTONIC`` on Linux, one clock for all processes of the machine, so
marks of different workers can be compared: the wall time of a phase is the
latest end minus the earliest start.
'''
from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = (
    'run_forked',
)


def _child(target: Callable[..., dict[str, Any]], index: int, args: tuple[Any, ...], barrier: Any,
        results: Any) -> None:
    from . import _profiling
    profiling = _profiling.start()  # only under profile_paths.py: this process's own profile
    try:
        result = target(index, barrier, *args)
    except BaseException as e:
        result = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-2000:]}
        try:
            barrier.abort()  # release the others instead of leaving them waiting
        except Exception:
            pass
    result["index"] = index
    if profiling:
        _profiling.dump()  # multiprocessing children leave by os._exit: no atexit
    results.put(result)


def run_forked(target: Callable[..., dict[str, Any]], n: int, args: tuple[Any, ...] = (),
        timeout: float = 120.0) -> list[dict[str, Any]]:
    ''' Run ``target(index, barrier, *args)`` in ``n`` forked processes.

    ``target`` calls ``barrier.wait(timeout)`` when it is ready to start its
    measured part, and returns a dict of results (its ``perf_counter`` marks
    among them). A worker that raises reports ``{"error": ...}``.

    Args:
        target (callable) : the worker's job; must be importable (fork only)
        n (int) : how many workers
        args (tuple, optional) : more arguments for ``target``
        timeout (float, optional) : seconds for all workers together; the
            ones still running then are killed

    Returns:
        list[dict] : one result per worker, by index (``{"error": ...}`` for
        a worker that failed, hung or died)
    '''
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(n)
    results: Any = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(target, i, args, barrier, results), name=f"bench-worker-{i}")
             for i in range(n)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    got: dict[int, dict[str, Any]] = {}
    while len(got) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            result = results.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            if not any(p.is_alive() for p in procs) and results.empty():
                break
            continue
        got[result["index"]] = result
    for p in procs:
        p.join(max(0.0, min(5.0, deadline - time.monotonic())))
        if p.is_alive():
            p.kill()
            p.join(5)
    return [got.get(i, {"error": f"worker {i} hung or died (exit code {procs[i].exitcode})"}) for i in range(n)]
