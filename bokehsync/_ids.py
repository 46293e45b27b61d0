''' Model ids that cannot collide with the ids of the server's models or of
another process's.

Bokeh names a new model ``p1001``, ``p1002``... from a counter that every
process starts at 1000 (``bokeh.util.serialization.make_id``, while
``bokeh.settings.simple_ids`` is True, its default). A Bokeh server counts
in its own process, so a model created here can get the id of a model of
the session's document that came from the server (its ``DocumentConfig``, a
model of the app), and forked workers continue one counter each from the
same value. Two models with one id in a document make bokeh keep one of them
and drop the other silently: the server ends without the model added
(``reference already known``), and later changes to it land on the other
model. Bokeh's remedy is its own setting: ``simple_ids`` False gives every
new model a UUID ("needed if multiple processes are contributing to a
single Bokeh Document", bokeh/settings.py). bokehsync sets it at import
unless the environment sets ``BOKEH_SIMPLE_IDS``.
'''
from __future__ import annotations

import os

from bokeh.settings import settings

__all__ = (
    'use_unique_ids',
)


def use_unique_ids() -> None:
    ''' Make models created from now on in this process get UUIDs, unless
    ``BOKEH_SIMPLE_IDS`` is set in the environment (then bokeh's rule stands).
    A later ``bokeh.settings.settings.simple_ids.set_value(...)`` by the
    program overrides this.
    '''
    if os.environ.get(settings.simple_ids.env_var or "BOKEH_SIMPLE_IDS") is None:
        settings.simple_ids.set_value(False)
