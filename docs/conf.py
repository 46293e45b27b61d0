''' Sphinx configuration of the bokehsync documentation (``sphinx-build -W docs out``). '''
from __future__ import annotations

import os
import sys

from docutils.statemachine import StringList
from sphinx.directives.other import TocTree

sys.path.insert(0, os.path.abspath(".."))

import bokehsync

project = "bokehsync"
copyright = "bokehsync contributors"
version = release = bokehsync.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
intersphinx_mapping = {}  # no network at build time
default_role = "literal"


class OptionalTocTree(TocTree):
    ''' A toctree of those listed documents that exist.

    Other pages (deployment, performance, reliability) are written separately;
    the index lists them when present and stays warning-free when not.
    '''

    def run(self):  # type: ignore[no-untyped-def]
        found = self.env.found_docs
        kept = [line for line in self.content if line.strip() and line.strip() in found]
        if not kept:
            return []
        self.content = StringList(kept, source=self.content.source(0))
        return super().run()


def join_wrapped_arg_names(app, what, name, obj, options, lines):  # type: ignore[no-untyped-def]
    ''' Join an ``Args:`` entry whose list of names wraps onto a second line.

    bokeh-style docstrings document related parameters together (``a, b,`` /
    ``c : text``); napoleon expects one line per entry head. Runs before
    napoleon (lower priority number), only inside ``Args:`` sections.
    '''
    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    section = entry = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() in ("Args:", "Arguments:", "Keyword Args:"):
            section, entry = indent(line), None
        elif line.strip() and section is not None:
            if indent(line) <= section:
                section = None
            elif entry is None:
                entry = indent(line)
            if (section is not None and indent(line) == entry and line.rstrip().endswith(",")
                    and ":" not in line and i + 1 < len(lines) and indent(lines[i + 1]) == entry):
                lines[i] = line.rstrip() + " " + lines[i + 1].strip()
                del lines[i + 1]
                continue
        i += 1


def setup(app):  # type: ignore[no-untyped-def]
    app.add_directive("optional-toctree", OptionalTocTree)
    app.connect("autodoc-process-docstring", join_wrapped_arg_names, priority=100)
