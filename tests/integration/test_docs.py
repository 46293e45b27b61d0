''' The Sphinx documentation builds without a single warning (sphinx-build -W). '''
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT

pytest.importorskip("sphinx")


def test_docs_build_without_warnings(tmp_path):
    ''' ``sphinx-build -W`` of docs/ succeeds: every page, the API reference from docstrings, every link. '''
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), os.path.join(ROOT, "docs"), str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    html = (tmp_path / "html" / "api.html").read_text(encoding="utf-8")
    for name in ("pull_session", "push_session", "ClientSession", "ReplyTimeout", "WrongProcess"):
        assert name in html
    assert (tmp_path / "html" / "migration.html").exists()
