''' The Bokeh app of the README's first example: a slider, and a line of text
that a server-side callback keeps equal to the slider's value.

Serve it (from a clone of the repository) with::

    bokeh serve examples/app.py          # http://localhost:5006/app

Open ``http://localhost:5006/app?bokeh-session-id=hello`` in a browser, then
change session ``hello`` from Python::

    from bokehsync import pull_session

    with pull_session(session_id="hello", url="http://localhost:5006/app") as session:
        session.document.get_model_by_name("slider").value = 42

The slider in the browser moves to 42, and the server's callback updates the
text: every client of session ``hello`` shares its one document.
'''
from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Div, Slider

slider = Slider(start=0, end=100, value=10, step=1, title="value", name="slider")
label = Div(text="value: 10", name="label")


def changed(attr: str, old: int, new: int) -> None:
    ''' Runs on the server whenever any client (a browser, a script) sets the slider. '''
    label.text = f"value: {new}"


slider.on_change("value", changed)
doc = curdoc()
doc.add_root(column(slider, label))
doc.title = "bokehsync example app"
