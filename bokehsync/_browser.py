''' ``show_session``: open a browser on a session, as bokeh.client's does
(exported by ``bokehsync`` and ``bokehsync.session``).
'''
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote_plus

from bokeh.client.util import server_url_for_websocket_url
from bokeh.resources import SessionCoordinates

if TYPE_CHECKING:
    from bokeh.core.types import ID
    from bokeh.util.browser import BrowserLike, BrowserTarget

__all__ = (
    'show_session',
)


class _Session(Protocol):
    ''' What ``show_session`` reads of a ``ClientSession``. '''

    @property
    def id(self) -> ID: ...

    @property
    def url(self) -> str: ...


def show_session(session_id: ID | None = None, url: str = "default", session: _Session | None = None,
        browser: str | None = None, new: BrowserTarget = "tab", controller: BrowserLike | None = None) -> None:
    ''' Open a browser displaying a session document.

    Args:
        session_id (str, optional) : the session; None for a new random one
            (default: None)
        url (str, optional) : URL of a Bokeh application, or ``"default"``
            (default: "default")
        session (ClientSession, optional) : take the session id and server URL
            from it instead (default: None)
        browser (str, optional) : which browser (see :mod:`webbrowser`;
            default: None, the system's)
        new (str, optional) : ``"tab"`` or ``"window"`` (default: "tab")
        controller (optional) : a ``webbrowser`` controller to use instead
            (default: None)
    '''
    from bokeh.util.browser import NEW_PARAM, get_browser_controller
    if session is not None:
        server_url = server_url_for_websocket_url(session.url)
        session_id = session.id
    else:
        coords = SessionCoordinates(session_id=session_id, url=url)
        server_url = coords.url
        session_id = coords.session_id
    if controller is None:
        controller = get_browser_controller(browser=browser)
    controller.open(server_url + "?bokeh-session-id=" + quote_plus(session_id), new=NEW_PARAM[new])
