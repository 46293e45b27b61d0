''' A Panel app served with ``panel serve`` by tests/integration/test_panel.py (and shown in
docs/integrations.rst): a slider, and a pane the server recomputes when the slider moves. '''
import panel as pn

slider = pn.widgets.IntSlider(name="n", start=0, end=100, value=3)


def square(n: int) -> str:
    return f"square: {n * n}"


pn.Column(slider, pn.pane.Markdown(pn.bind(square, slider))).servable()
