''' ``--show``: open a URL in a web browser, and know whether one opened.

:func:`bokehsync.show_session` (like ``bokeh.client``'s) cannot tell: Python's
:mod:`webbrowser` reports ``False`` when it found no browser, or when the one
it ran failed, and ``bokeh`` drops that. Here it is kept, so the command can
say that no browser opened instead of leaving the user waiting for one.
'''
from __future__ import annotations

import sys
import webbrowser
from typing import Any

__all__ = (
    'open_browser',
    'show_or_say',
)


def open_browser(url: str) -> str | None:
    ''' Open ``url`` in a new tab of the browser bokeh would use.

    The browser is chosen as ``bokeh`` chooses it: ``BOKEH_BROWSER`` if set
    (``none`` for none), else Python's :mod:`webbrowser` default, which honours
    ``BROWSER``.

    Args:
        url (str) : what to open

    Returns:
        str | None : None if a browser took the URL; otherwise why not, as a phrase
    '''
    from bokeh.settings import settings
    from bokeh.util.browser import get_browser_controller

    choice = settings.browser()
    try:
        controller: Any = get_browser_controller(choice)
        opened = controller.open(url, new=2)
    except webbrowser.Error as e:
        return f"{e} (BOKEH_BROWSER={choice})" if choice else str(e)
    except Exception as e:  # a browser command that crashed: say so, the push itself succeeded
        return f"{type(e).__name__}: {e}"
    if opened:
        return None
    if choice == "none":
        return "BOKEH_BROWSER is 'none'"
    return ("no usable web browser was found (none installed, no display, or it failed to start; "
            "set BROWSER to choose one)")


def show_or_say(url: str, command: str) -> bool:
    ''' Open ``url`` in a browser, or say on stderr that none opened.

    Args:
        url (str) : the session URL (already printed on stdout)
        command (str) : the command's name, for the message

    Returns:
        bool : whether a browser opened
    '''
    why = open_browser(url)
    if why is not None:
        print(f"bokehsync {command}: no web browser opened: {why}. Open the URL yourself.",
              file=sys.stderr, flush=True)
    return why is None
