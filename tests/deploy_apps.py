''' Bokeh apps for the deployment tests: they show what the server saw. '''
from __future__ import annotations

import json

from bokeh.document import Document
from bokeh.models import Div


def _text(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_text(v) for v in value]
    return value


def whoami(doc: Document) -> None:
    ''' A Div named "whoami" whose text is JSON: the header, cookie and
    arguments this session's request carried (or its token's extra payload).
    '''
    request = doc.session_context.request
    info = {
        "header": request.headers.get("X-Bokehsync-User"),
        "cookie": request.cookies.get("user"),
        "cookies": sorted(request.cookies),
        "arguments": {k: _text(v) for k, v in request.arguments.items()},
        "forwarded_proto": request.headers.get("X-Forwarded-Proto"),
    }
    doc.add_root(Div(text=json.dumps(info), name="whoami"))
