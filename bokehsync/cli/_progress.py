''' The progress indicator of ``pull`` and ``push`` on a terminal. '''
from __future__ import annotations

import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

__all__ = (
    'PROGRESS_DELAY',
    'Progress',
    'progress_kwargs',
)

#: Seconds a push or pull runs before a progress indicator appears.
PROGRESS_DELAY = 0.5


class Progress:
    ''' A progress indicator on a terminal, shown only after ``delay`` seconds.

    With a ``progress=`` callback (when the client offers one) it is a bar
    (``tqdm`` if installed, else a percentage); otherwise a spinner with the
    elapsed time. Nothing is written when ``stream`` is not a terminal.

    The spinner runs on a thread ``bokehsync-cli-progress``, joined on exit.

    Args:
        label (str) : what is going on ("pulling")
        stream (file, optional) : where to draw (default: stderr)
        delay (float, optional) : seconds before it appears
        enabled (bool, optional) : False for no output at all
    '''

    def __init__(self, label: str, stream: IO[str] | None = None, delay: float = PROGRESS_DELAY,
            enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.delay = delay
        self.enabled = enabled and _isatty(self.stream)
        self._start = time.monotonic()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._fraction: float | None = None
        self._bar: Any = None
        self._drawn = False
        self._mutex = threading.Lock()  # guards drawing on the stream

    def callback(self, *args: Any) -> None:
        ''' For ``progress=``: ``(done, total)`` or ``(fraction,)``. Any thread. '''
        try:
            if len(args) >= 2 and args[1]:
                self._fraction = min(1.0, float(args[0]) / float(args[1]))
            elif len(args) == 1 and isinstance(args[0], (int, float)) and 0 <= args[0] <= 1:
                self._fraction = float(args[0])
        except (TypeError, ValueError, ZeroDivisionError):
            return

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._run, name="bokehsync-cli-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self._bar:  # False: no tqdm, the plain indicator was drawn
                self._bar.close()
            elif self._drawn:
                self.stream.write("\r\033[K")
                self.stream.flush()

    def _run(self) -> None:
        ''' The progress thread: draw every 0.1 s after the delay, until done. '''
        if self._done.wait(self.delay):
            return
        frames = "|/-\\"
        n = 0
        while not self._done.is_set():
            with self._mutex:
                self._draw(frames[n % len(frames)])
            n += 1
            self._done.wait(0.1)

    def _draw(self, frame: str) -> None:
        elapsed = time.monotonic() - self._start
        if self._fraction is not None:
            if self._bar is None:
                try:
                    from tqdm import tqdm  # type: ignore[import-untyped,unused-ignore]
                    self._bar = tqdm(total=100, desc=self.label, file=self.stream, leave=False,
                                     bar_format="{desc} {bar} {percentage:3.0f}% {elapsed}")
                except ImportError:
                    self._bar = False
            if self._bar:
                self._bar.n = round(100 * self._fraction)
                self._bar.refresh()
                return
            text = f"{self.label} {100 * self._fraction:3.0f}% {elapsed:.1f} s"
        else:
            text = f"{frame} {self.label} {elapsed:.1f} s"
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self._drawn = True


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _accepts_progress(func: Callable[..., Any]) -> bool:
    ''' Whether a client method takes ``progress=`` (newer bokehsync versions). '''
    try:
        return "progress" in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


@contextmanager
def progress_kwargs(label: str, func: Callable[..., Any], quiet: bool) -> Iterator[dict[str, Any]]:
    ''' Show progress around a call of ``func``; yields the extra kwargs for it.

    Args:
        label (str) : what is going on ("pulling")
        func (callable) : the client method about to be called
        quiet (bool) : True for no indicator at all

    Yields:
        dict : ``{"progress": callback}`` if ``func`` takes ``progress=``, else ``{}``
    '''
    with Progress(label, enabled=not quiet) as progress:
        yield {"progress": progress.callback} if _accepts_progress(func) else {}
