''' The ``io_loop`` compatibility shim: a Tornado IOLoop on a thread of its own.

bokehsync does no I/O on an event loop. A loop exists only because document
session callbacks (``add_periodic_callback`` and friends) are Tornado
callbacks, and because code written for ``bokeh.client`` reads
``connection.io_loop``. So the loop is created on first use, runs on the
daemon thread ``bokehsync-ioloop-<session>`` (daemon: an open session must not
keep the interpreter alive), and is stopped and closed by ``stop()``.
'''
from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .exceptions import BokehSyncError

if TYPE_CHECKING:
    from tornado.ioloop import IOLoop

__all__ = (
    'LoopThread',
)

log = logging.getLogger(__name__)


class LoopThread:
    ''' A lazily started Tornado IOLoop owned by one connection.

    ``loop_mutex`` guards starting and stopping. The loop itself is used only
    through ``add_callback`` from other threads, which Tornado makes safe.

    Args:
        name (str) : the thread's name
        io_loop (IOLoop, optional) : a loop given by the caller, used as given
            and never started or stopped here
    '''

    def __init__(self, name: str, io_loop: IOLoop | None = None) -> None:
        self._name = name
        self.loop_mutex = threading.Lock()
        self._given = io_loop
        self._loop: IOLoop | None = io_loop
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        ''' Whether a loop exists (given, or created here). '''
        return self._loop is not None

    def get(self, timeout: float = 10.0) -> IOLoop:
        ''' The loop, created and started on its thread if needed.

        Raises:
            BokehSyncError: if the loop thread did not start within ``timeout``
        '''
        with self.loop_mutex:
            if self._loop is not None:
                return self._loop
            ready = threading.Event()
            box: list[IOLoop] = []
            thread = threading.Thread(target=self._run, args=(box, ready), name=self._name, daemon=True)
            thread.start()
            if not ready.wait(timeout) or not box:
                raise BokehSyncError(f"the io_loop thread {self._name} did not start in {timeout} s")
            self._thread = thread
            self._loop = box[0]
            return self._loop

    def _run(self, box: list[IOLoop], ready: threading.Event) -> None:
        ''' Body of the loop thread: run the loop until ``stop()``. '''
        try:
            from tornado.ioloop import IOLoop  # here: most sessions never need Tornado
            asyncio.set_event_loop(asyncio.new_event_loop())
            loop = IOLoop.current()
            box.append(loop)
        finally:
            ready.set()
        try:
            loop.start()
        except Exception:
            log.exception("io_loop thread %s failed", self._name)
        finally:
            try:
                loop.close(all_fds=False)
            except Exception:
                log.debug("closing the io_loop of %s failed", self._name, exc_info=True)

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        ''' Run ``fn(*args)`` on the loop's thread (any thread may call this). '''
        self.get().add_callback(fn, *args)

    def stop(self, timeout: float = 5.0) -> None:
        ''' Stop and close a loop created here; leave a given loop alone. '''
        with self.loop_mutex:
            thread, loop = self._thread, self._loop
            if thread is None or loop is None:
                return
            self._thread = None
            self._loop = None
        if thread is threading.current_thread():
            loop.add_callback(loop.stop)
            return
        try:
            loop.add_callback(loop.stop)
        except RuntimeError:
            pass
        thread.join(timeout)
        if thread.is_alive():
            log.warning("io_loop thread %s did not stop within %s s", self._name, timeout)

    def forget(self) -> None:
        ''' Drop the loop in a forked child, where its thread does not exist. '''
        self.loop_mutex = threading.Lock()
        self._thread = None
        self._loop = self._given
