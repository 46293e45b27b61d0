''' The install metadata: pip installs bokehsync on every Python from 3.10 on, newer ones
included (no upper cap), refuses older ones, and the classifiers name the tested versions. '''
from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys

from tests.support import ROOT


def _pip_dry_run(python_version: str, tmp_path) -> subprocess.CompletedProcess[str]:
    ''' What ``pip install .`` would do for another Python: pip builds the metadata from
    setup.cfg and checks ``Requires-Python`` against ``python_version``, installs nothing. '''
    return subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet",
                           "--python-version", python_version, "--target", str(tmp_path / "target"),
                           "--report", str(tmp_path / "report.json"), ROOT],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_pip_installs_on_a_python_newer_than_the_tested_ones(tmp_path):
    ''' Python 3.14 (the current release when this was written, untested here): pip would install. '''
    done = _pip_dry_run("3.14", tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    (item,) = report["install"]
    assert item["metadata"]["name"] == "bokehsync"
    assert item["metadata"]["requires_python"] == ">=3.10"


def test_pip_refuses_a_python_older_than_3_10(tmp_path):
    ''' Python 3.9: pip stops, saying which Pythons bokehsync needs. '''
    done = _pip_dry_run("3.9", tmp_path)
    assert done.returncode != 0
    assert "requires a different Python: 3.9.0 not in '>=3.10'" in done.stderr


def test_classifiers_name_the_tested_pythons():
    ''' The Python classifiers, the noxfile's matrix and docs/matrix.rst list the same versions. '''
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(ROOT, "setup.cfg"))
    classifiers = re.findall(r"Programming Language :: Python :: (3\.\d+)$", cfg["metadata"]["classifiers"], re.M)
    with open(os.path.join(ROOT, "noxfile.py")) as f:
        nox_pythons = re.search(r"^PYTHONS = \(([^)]*)\)", f.read(), re.M).group(1)
    with open(os.path.join(ROOT, "docs", "matrix.rst")) as f:
        matrix_row = re.search(r"^Python +([\d., and]+?) +``python_requires", f.read(), re.M).group(1)
    assert classifiers == re.findall(r"3\.\d+", nox_pythons) == re.findall(r"3\.\d+", matrix_row)
    assert cfg["options"]["python_requires"].strip() == ">=3.10"
