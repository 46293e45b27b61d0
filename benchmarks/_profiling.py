''' cProfile of every thread of a benchmark process (used by ``profile_paths.py``).

``cProfile`` profiles only the thread that enables it. When the environment
variable ``BENCH_CPROFILE_DIR`` is set, :func:`start` profiles the calling
thread and every thread started after it (``threading.setprofile``), and
:func:`dump` writes one ``.prof`` file per thread into that directory,
named ``<pid>-<thread name>.prof``. A forked child calls :func:`start` again
so that it profiles itself from a clean slate.
'''
from __future__ import annotations

import atexit
import cProfile
import os
import re
import sys
import threading
from typing import Any

__all__ = (
    'dump',
    'start',
)

ENV = "BENCH_CPROFILE_DIR"

#: (thread name, profiler) of this process, guarded by _mutex.
_profiles: list[tuple[str, cProfile.Profile]] = []
_mutex = threading.Lock()


def _enable_here(*_: Any) -> None:
    ''' Installed by ``threading.setprofile``: runs first in each new thread
    and replaces itself with a cProfile profiler of that thread.
    '''
    sys.setprofile(None)
    profile = cProfile.Profile()
    with _mutex:
        _profiles.append((threading.current_thread().name, profile))
    profile.enable()


def start() -> bool:
    ''' Profile this thread and every later one, if ``BENCH_CPROFILE_DIR`` is set.

    Returns:
        bool : whether profiling started
    '''
    if not os.environ.get(ENV):
        return False
    sys.setprofile(None)
    with _mutex:
        for _, old in _profiles:
            old.disable()
        _profiles.clear()  # a forked child: drop the parent's
    threading.setprofile(_enable_here)
    _enable_here()
    atexit.register(dump)
    return True


def dump() -> None:
    ''' Write each thread's profile to ``$BENCH_CPROFILE_DIR`` (idempotent). '''
    directory = os.environ.get(ENV)
    if not directory:
        return
    threading.setprofile(None)  # type: ignore[arg-type]
    with _mutex:
        profiles = list(_profiles)
        _profiles.clear()
    for name, profile in profiles:
        profile.disable()
        safe = re.sub(r"[^\w.-]", "_", name)
        try:
            profile.dump_stats(os.path.join(directory, f"{os.getpid()}-{safe}.prof"))
        except (TypeError, ValueError):
            pass  # a thread still inside a profiled call: nothing consistent to write
