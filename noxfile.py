''' The version matrix: bokehsync against every bokeh and Python it supports.

Run all of it with ``nox`` (about 10 minutes on 2 cores), one session with
``nox -s bokeh-3.4``, a list with ``nox -l``. Arguments after ``--`` go to
pytest: ``nox -s tests-3.13 -- -k pull -x``.

Sessions:

* ``tests-3.10`` ... ``tests-3.13``: the newest bokeh on each Python;
* ``bokeh-3.4``, ``bokeh-3.6``, ``bokeh-3.8``: the newest patch release of
  each on Python 3.11;
* ``deps-oldest``: every floor of setup.cfg at once (bokeh 3.4.0,
  websocket-client 1.6.0, tornado 6.2);
* ``deps-newest``: the newest websocket-client and tornado on PyPI.

The interpreters are found under pyenv (``$PYENV_ROOT``, default
``~/.pyenv``): their ``bin`` directories are put first on ``PATH`` here, so
nox finds ``python3.1x`` without pyenv's shims (which only work for a version
pyenv was told to use). A Python that is found neither there nor on ``PATH``
fails its session, loudly, and ``nox`` exits non-zero.
'''
from __future__ import annotations

import glob
import os
import re

import nox

#: Pythons bokehsync supports (setup.cfg ``python_requires``).
PYTHONS = ("3.10", "3.11", "3.12", "3.13")

#: Python of the sessions that vary a dependency instead of the interpreter.
DEFAULT_PYTHON = "3.11"

#: bokeh minor releases tested on DEFAULT_PYTHON (the newest one is tested by ``tests-*``).
BOKEHS = ("3.4", "3.6", "3.8")

#: The floors of setup.cfg ``install_requires``, tested together by ``deps-oldest``.
OLDEST = ("bokeh==3.4.0", "websocket-client==1.6.0", "tornado==6.2")

nox.options.sessions = [f"tests-{py}" for py in PYTHONS] + [f"bokeh-{v}" for v in BOKEHS] \
    + ["deps-oldest", "deps-newest"]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False


def _pyenv_bins() -> list[str]:
    ''' The ``bin`` directory of the newest pyenv install of each supported Python. '''
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    bins = []
    for py in PYTHONS:
        found = sorted(glob.glob(os.path.join(root, "versions", f"{py}.*", "bin", f"python{py}")),
                       key=lambda p: [int(n) for n in re.findall(r"\d+", os.path.basename(os.path.dirname(
                           os.path.dirname(p))))])
        if found:
            bins.append(os.path.dirname(found[-1]))
    return bins


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])


def _run_tests(session: nox.Session, *requirements: str) -> None:
    ''' Install bokehsync with its test extras and ``requirements``, show the
    versions under test, and run the suite (arguments after ``--`` go to pytest).
    '''
    session.install("--upgrade", "pip")
    session.install("-e", ".[test]", *requirements)
    session.run("python", "-c",
                "import sys, bokeh, tornado, websocket; "
                "print(f'python {sys.version.split()[0]}, bokeh {bokeh.__version__}, '"
                "f'tornado {tornado.version}, websocket-client {websocket.__version__}')")
    session.run("pytest", *session.posargs)


@nox.session(python=list(PYTHONS))
def tests(session: nox.Session) -> None:
    ''' The newest bokeh on one supported Python. '''
    _run_tests(session, "--upgrade", "bokeh")


def _bokeh_session(minor: str) -> None:
    @nox.session(name=f"bokeh-{minor}", python=DEFAULT_PYTHON)
    def run(session: nox.Session) -> None:
        _run_tests(session, f"bokeh=={minor}.*")
    run.__doc__ = f''' The newest bokeh {minor}.x on Python {DEFAULT_PYTHON}. '''


for _minor in BOKEHS:
    _bokeh_session(_minor)


@nox.session(name="deps-oldest", python=DEFAULT_PYTHON)
def deps_oldest(session: nox.Session) -> None:
    ''' Every floor of setup.cfg at once: bokeh, websocket-client, tornado. '''
    _run_tests(session, *OLDEST)


@nox.session(name="deps-newest", python=DEFAULT_PYTHON)
def deps_newest(session: nox.Session) -> None:
    ''' The newest websocket-client and tornado (and bokeh) on PyPI. '''
    _run_tests(session, "--upgrade", "--upgrade-strategy", "eager", "bokeh", "websocket-client", "tornado")
