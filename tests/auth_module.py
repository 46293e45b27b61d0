''' A Bokeh auth module (``Server(auth_provider=AuthModule(this file))``):
a request is let in when it carries the cookie ``user`` or the header
``X-Bokehsync-User`` with a known user name.
'''
from __future__ import annotations

from typing import Any

USERS = {"alice", "bob", "carol"}

login_url = "/login"


def get_user(request_handler: Any) -> str | None:
    ''' The user of a request, or None (refused). '''
    user = request_handler.get_cookie("user") or request_handler.request.headers.get("X-Bokehsync-User")
    return user if user in USERS else None
