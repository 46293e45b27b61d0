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


def setup(app):  # type: ignore[no-untyped-def]
    app.add_directive("optional-toctree", OptionalTocTree)
