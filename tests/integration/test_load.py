''' Load: many sessions at once; a soak run marked slow. (Many threads on one connection and
bursts: test_delivery.py.) '''
from __future__ import annotations

import os
import resource
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource, Range1d

from bokehsync import pull_session, push_session
from tests.support import pulled


def test_50_sessions_open_at_once(server):
    ''' 50 sessions open at the same time, each pushing its own value; every value is on the server. '''
    url = server.url("/empty")

    def open_one(k: int):
        doc = Document()
        doc.add_root(Range1d(start=k, end=k + 1, name="r"))
        session = push_session(doc, url=url)
        doc.roots[0].end = k + 1000
        return session
    with ThreadPoolExecutor(10) as pool:
        sessions = list(pool.map(open_one, range(50)))
    try:
        assert all(s.connected for s in sessions)
        for s in sessions:
            s.flush()
        with ThreadPoolExecutor(10) as pool:
            values = list(pool.map(lambda s: _pulled_range(url, s.id), sessions))
    finally:
        for s in sessions:
            s.close()
    assert values == [(k, k + 1000) for k in range(50)]


def _pulled_range(url: str, session_id: str) -> tuple[float, float]:
    r = pulled(url, session_id).get_model_by_name("r")
    return r.start, r.end


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_soak_streaming_two_minutes(server):
    ''' Two minutes of streaming and server updates: thread count and RSS stay flat. '''
    doc = Document()
    source = ColumnDataSource(data={"x": np.zeros(0), "y": np.zeros(0)}, name="cds")
    doc.add_root(source)
    with push_session(doc, url=server.url("/empty")) as session, \
            pull_session(url=server.url("/stream")) as listener:
        ticks = listener.document.get_model_by_name("source")
        warm = time.monotonic() + 10
        start_threads, start_rss = None, None
        end = time.monotonic() + 120
        k = 0
        while time.monotonic() < end:
            source.stream({"x": np.arange(100.0) + k, "y": np.ones(100)}, rollover=10_000)
            k += 100
            if k % 10_000 == 0:
                session.flush()
            if start_rss is None and time.monotonic() > warm:
                start_threads, start_rss = threading.active_count(), _rss_mb()
                print(f"start: {start_threads} threads, {start_rss:.1f} MiB RSS")
        session.flush()
        end_threads, end_rss = threading.active_count(), _rss_mb()
        print(f"end:   {end_threads} threads, {end_rss:.1f} MiB RSS, {k} rows streamed, "
              f"{len(ticks.data['x'])} server ticks received, maxrss "
              f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    assert end_threads == start_threads
    assert end_rss - start_rss < 50
    assert len(ticks.data["x"]) > 1000
