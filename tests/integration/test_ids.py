''' Models made in the client never share an id with the server's models or another process's.

Bokeh numbers new models from a per-process counter (``p1001``, ``p1002``...): a model made here can
get the id of a model the server made, and forked workers continue one counter each from the same
value. Two models with one id in a session's document make bokeh keep one and drop the other
silently. bokehsync switches the process to bokeh's UUID ids at import (``bokehsync._ids``).
'''
from __future__ import annotations

import os
import textwrap

from bokeh.document import Document
from bokeh.models import Range1d

from bokehsync import pull_session, push_session
from tests.support import LONG, pulled, run_python


def test_a_model_made_here_never_takes_the_id_of_a_model_from_the_server(server):
    ''' The client's counter reaches the id of a model the server made (as it does after enough models,
    here set directly): a Range1d added to the pulled document still reaches the server, and the
    server's own model stays. '''
    import bokeh.util.serialization as ids

    url = server.url("/slider")
    with pull_session(url=url, timeout=LONG) as session:
        source = session.document.get_model_by_name("source")
        assert source.id.startswith("p")  # the server counts simple ids, as `bokeh serve` does
        saved = ids._simple_id
        ids._simple_id = int(source.id[1:]) - 1  # the next simple id would be the source's
        try:
            r = Range1d(start=5, end=9, name="mine")
        finally:
            ids._simple_id = max(saved, ids._simple_id)
        assert r.id != source.id
        with session.lock:
            session.document.add_root(r)
        session.flush()
        server_doc = pulled(url, session.id, timeout=LONG)
    assert server_doc.get_model_by_name("mine").end == 9
    assert server_doc.get_model_by_name("source").data is not None


def test_models_made_in_forked_workers_all_reach_the_shared_session(server):
    ''' Two workers forked from one process each add a Range1d to one session: the server has both
    (with simple ids both would be the same id, continued from the parent's counter). '''
    url = server.url("/empty")
    with push_session(Document(), url=url, timeout=LONG) as session:
        code = textwrap.dedent(f'''
            import multiprocessing, sys
            import bokehsync
            from bokeh.models import Range1d

            def work(i):
                with bokehsync.pull_session(session_id={session.id!r}, url={url!r}, timeout=30) as s:
                    with s.lock:
                        s.document.add_root(Range1d(start=i, end=10 + i, name=f"w{{i}}"))

            if __name__ == "__main__":
                ctx = multiprocessing.get_context("fork")
                workers = [ctx.Process(target=work, args=(i,)) for i in range(2)]
                for w in workers:
                    w.start()
                for w in workers:
                    w.join(30)
                    if w.is_alive():
                        w.kill()
                        sys.exit("a worker did not finish in 30 s")
                sys.exit(max(w.exitcode for w in workers))
        ''')
        result = run_python(code)
        assert result.returncode == 0, result.stderr
        server_doc = pulled(url, session.id, timeout=LONG)
    assert sorted((r.name, r.start, r.end) for r in server_doc.roots) == [("w0", 0, 10), ("w1", 1, 11)]


def test_bokeh_simple_ids_in_the_environment_is_kept():
    ''' BOKEH_SIMPLE_IDS=yes keeps bokeh's counter; without it, new models get UUIDs. '''
    code = "import bokehsync; from bokeh.models import Range1d; print(Range1d().id)"
    simple = run_python(code, env={"BOKEH_SIMPLE_IDS": "yes"})
    assert simple.returncode == 0, simple.stderr
    assert simple.stdout.strip().startswith("p")
    assert "BOKEH_SIMPLE_IDS" not in os.environ
    unique = run_python(code)
    assert unique.returncode == 0, unique.stderr
    assert len(unique.stdout.strip()) == 36
