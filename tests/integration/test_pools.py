''' Worker pools push documents to one server through their own sessions: multiprocessing
(spawn and fork), concurrent.futures, and a Dask LocalCluster of worker processes. '''
from __future__ import annotations

import importlib.util
import multiprocessing as mp
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource

from bokehsync import pull_session, push_session
from bokehsync._localserver import LocalServer
from tests.support import LONG, ROOT

TASKS = 4


@pytest.fixture(scope="module")
def app_url() -> Iterator[str]:
    ''' A server of this module's own; sessions outlive their clients long enough to be checked. '''
    srv = LocalServer({"/empty": "tests.apps:empty"}, pythonpath=[ROOT],
                      server_kwargs={"unused_session_lifetime_milliseconds": 600_000})
    srv.start()
    try:
        yield srv.url("/empty")
    finally:
        srv.stop()


def push_task(url: str, session_id: str, index: int) -> tuple[str, int]:
    ''' In a worker process: push a document of ``index + 1`` rows to ``session_id``. '''
    doc = Document()
    doc.add_root(ColumnDataSource(data={"i": list(range(index + 1)), "pid": [os.getpid()] * (index + 1)},
                                  name="source"))
    with push_session(doc, session_id=session_id, url=url, timeout=LONG):
        pass
    return session_id, os.getpid()


def _check_all_arrived(url: str, results: list[tuple[str, int]], prefix: str) -> None:
    assert sorted(sid for sid, _ in results) == sorted(f"{prefix}-{i}" for i in range(TASKS))
    for index in range(TASKS):
        with pull_session(session_id=f"{prefix}-{index}", url=url, timeout=LONG) as check:
            data = check.document.get_model_by_name("source").data
        assert list(data["i"]) == list(range(index + 1))
        pid = dict(results)[f"{prefix}-{index}"]
        assert pid != os.getpid() and set(data["pid"]) == {pid}


@pytest.mark.parametrize("start", ["spawn", "fork"])
@pytest.mark.parametrize("kind", ["multiprocessing.Pool", "ProcessPoolExecutor"])
def test_process_pool_workers_push_documents(app_url, kind, start):
    ''' Every task's document arrives, and the parent's own open session keeps working across the fork. '''
    prefix = f"{kind}-{start}"
    ctx = mp.get_context(start)
    parent_doc = Document()
    parent_doc.add_root(ColumnDataSource(data={"step": ["before"]}, name="parent"))
    with push_session(parent_doc, url=app_url, timeout=LONG) as parent:
        jobs = [(app_url, f"{prefix}-{i}", i) for i in range(TASKS)]
        if kind == "multiprocessing.Pool":
            with ctx.Pool(2) as pool:
                results = pool.starmap(push_task, jobs)
        else:
            with ProcessPoolExecutor(2, mp_context=ctx) as executor:
                results = list(executor.map(push_task, *zip(*jobs, strict=True)))
        parent_doc.get_model_by_name("parent").data = {"step": ["after"]}
        parent.flush()
        with pull_session(session_id=parent.id, url=app_url, timeout=LONG) as check:
            assert list(check.document.get_model_by_name("parent").data["step"]) == ["after"]
    _check_all_arrived(app_url, results, prefix)


@pytest.fixture(scope="module")
def dask_client() -> Iterator[object]:
    ''' A LocalCluster of 2 worker processes, once for the module. '''
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    try:
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def dask_example(dask_client) -> Iterator[object]:
    ''' examples/dask_cluster.py as module ``dask_cluster``, here and (client.upload_file) on the workers,
    as a real cluster gets a task module that is not installed. '''
    path = os.path.join(ROOT, "examples", "dask_cluster.py")
    dask_client.upload_file(path)
    spec = importlib.util.spec_from_file_location("dask_cluster", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # tasks pickle by reference: dask_cluster.make_report
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _gather(client, futures):
    ''' The futures' results; if they hang, fail with what each worker is doing. '''
    import distributed
    try:
        distributed.wait(futures, timeout=LONG * 2)
    except distributed.TimeoutError:
        raise AssertionError(f"Dask tasks did not finish: call stacks {client.call_stack()!r}")
    return client.gather(futures, errors="raise")


def test_dask_workers_push_documents(app_url, dask_client, dask_example):
    ''' Tasks on a Dask LocalCluster (2 worker processes) each push a document; all arrive. '''
    futures = [dask_client.submit(dask_example.make_report, app_url, f"dask-{i}", i, pure=False)
               for i in range(TASKS)]
    results = _gather(dask_client, futures)
    worker_pids = set(dask_client.run(os.getpid).values())
    assert {r["pid"] for r in results} <= worker_pids and os.getpid() not in worker_pids
    assert sorted(r["session_id"] for r in results) == [f"dask-{i}" for i in range(TASKS)]
    for r in results:
        with pull_session(session_id=r["session_id"], url=app_url, timeout=LONG) as check:
            doc = check.document
            assert len(doc.get_model_by_name("source").data["y"]) == 100
            assert f"pid {r['pid']}" in doc.get_model_by_name("plot").title.text


def test_dask_example_runs_on_the_cluster(app_url, dask_client, dask_example):
    ''' The example's run(): submit, gather, and check every session from the client side. '''
    found = dask_example.run(dask_client, app_url, tasks=2, prefix="dask-example")
    assert found == {"dask-example-0": 100, "dask-example-1": 100}
