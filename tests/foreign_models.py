''' A Bokeh app with a model class of its own, for tests/integration/test_compat.py.

Only the **server** process imports this module (``LocalServer`` serves
``tests.foreign_models:app``); the test client must never import it, so that
pulling the app's document meets a model type the client does not define, as a
client without ``import panel`` meets Panel's models.
'''
from __future__ import annotations

from bokeh.core.properties import Int
from bokeh.document import Document
from bokeh.model import Model


class Gauge(Model):
    ''' A model type only the server defines (qualified name ``tests.foreign_models.Gauge``). '''

    level = Int(default=0)


def app(doc: Document) -> None:
    ''' One root of the server's own type. '''
    doc.add_root(Gauge(level=7, name="gauge"))
