''' What happens to open connections when the process exits or forks.

* At interpreter exit, every connection still open in this process is
  closed after a flush, so changes made just before the end of a script
  reach the server (the reader threads are daemons and would otherwise just
  vanish).
* In a child made by ``fork()``, every inherited connection is told so at
  once, before any other code of the child runs: the parent's socket and
  threads are not the child's (``os.register_at_fork``).

The registry is this module's one piece of process-wide state: it holds the
connections weakly, guarded by ``registry_mutex``.
'''
from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable

__all__ = (
    'track',
)

log = logging.getLogger(__name__)

registry_mutex = threading.Lock()

#: id -> (at exit, in a forked child): weak methods of live connections.
_registry: dict[int, tuple[weakref.WeakMethod[Callable[[], None]], weakref.WeakMethod[Callable[[], None]]]] = {}


def track(at_exit: Callable[[], None], in_child: Callable[[], None]) -> None:
    ''' Call the bound method ``at_exit()`` at interpreter exit and ``in_child()``
    in a forked child, for as long as their object lives.
    '''
    key = id(at_exit.__self__)  # type: ignore[attr-defined]
    entry = (weakref.WeakMethod(at_exit), weakref.WeakMethod(in_child))
    with registry_mutex:
        _registry[key] = entry
    forget = weakref.finalize(at_exit.__self__, _forget, key, entry)  # type: ignore[attr-defined]
    # Finalizers also run at interpreter exit by default, from an atexit hook
    # registered after ours, so before it: that would empty the registry
    # before the sessions could be flushed.
    forget.atexit = False
    _watch_multiprocessing()


def _watch_multiprocessing() -> None:
    ''' Processes that ``multiprocessing`` forks end with ``os._exit``, which
    skips ``atexit``: have them close their sessions through its own exit
    finalizers instead. (Only if the program uses multiprocessing already:
    importing it here would cost every program that does not.)
    '''
    global _mp_watched
    util = sys.modules.get("multiprocessing.util")
    if util is None or _mp_watched:
        return
    _mp_watched = True
    # Runs in each child after multiprocessing cleared the parent's finalizers.
    util.register_after_fork(_ANCHOR, lambda _: util.Finalize(None, _close_all_at_exit, exitpriority=10))


class _Anchor:
    ''' A weak-referenceable key for ``multiprocessing.util.register_after_fork``. '''


_ANCHOR = _Anchor()

#: Whether the multiprocessing hook above is in place.
_mp_watched = False


def _forget(key: int, entry: object) -> None:
    with registry_mutex:
        if _registry.get(key) is entry:
            del _registry[key]


def _live(index: int) -> list[Callable[[], None]]:
    with registry_mutex:
        refs = [entry[index] for entry in _registry.values()]
    return [method for method in (ref() for ref in refs) if method is not None]


def _close_all_at_exit() -> None:
    for at_exit in _live(0):
        try:
            at_exit()
        except Exception as e:
            log.warning("closing a session at exit: %s", e)


def _all_in_child() -> None:
    global registry_mutex
    registry_mutex = threading.Lock()  # another thread may have held it at the fork
    for in_child in _live(1):
        in_child()


atexit.register(_close_all_at_exit)
os.register_at_fork(after_in_child=_all_in_child)
