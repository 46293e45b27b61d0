''' Bringing a document to the server's state in place, keeping its model objects.

bokeh's own way to load a pulled document (``Document.replace_with_json``)
builds new model objects and moves them in: every model object a program
holds (``source = doc.get_model_by_name("source")``) is then no longer in the
document, and a change made through it reaches nobody, silently. Resyncs
happen behind the program's back (after a reconnect, or when a server change
could not be applied), so they must not do that. :func:`reconcile` instead
updates the document's own objects: a model of the server's document that
the local one has (same id, same class) gets the server's property values;
a model only the server has is created; the roots and title follow the
server's. Each property that differs is set once, with the session as
``setter`` (so it is not sent back), and the usual ``on_change`` callbacks run.

Changes of ours that the server had not applied when it made the snapshot
(``_converge.Pending``) are kept, by the rules of ``_converge``: a property
we set keeps our value; a source we streamed to gets the server's rows and
then our pending ones. Where no rule is exact (our pending patches, column
by column replacements), the local value is kept and the caller asked to
resynchronise again once those changes are acknowledged.
'''
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bokeh.core.serialization import Deserializer, Serialized
from bokeh.model import Model
from bokeh.model.util import collect_models

from ._converge import Pending, Touch
from ._streams import concat_rows
from .exceptions import UnknownModelType

if TYPE_CHECKING:
    from bokeh.document import Document

__all__ = (
    'reconcile',
    'unknown_model_error',
    'unknown_model_types',
)


def reconcile(doc: Document, snapshot: Serialized[Any], setter: Any, pending: Pending) -> bool:
    ''' Make ``doc`` equal to the server's ``snapshot`` (a PULL-DOC-REPLY's
    ``doc``), in place, keeping ``pending`` changes of ours.

    Args:
        doc (Document) : the session's document
        snapshot (Serialized) : the server's document JSON and its buffers
        setter (object) : the ``setter`` of the changes made here
        pending (Pending) : our changes the snapshot does not contain yet

    Returns:
        bool : whether a pending change was kept inexactly (resynchronise
        again once it is acknowledged)

    Raises:
        DeserializationError: the snapshot names a model class this process lacks
    '''
    content = dict(snapshot.content)
    content["defs"] = []  # as Document.from_json: model definitions are not loaded
    struct = Deserializer().deserialize(Serialized(content, snapshot.buffers))
    server_roots: list[Model] = list(struct["roots"])
    _config(doc, struct.get("config"), setter)
    title = struct.get("title")
    if not doc.roots and not len(doc.models):
        # An empty document (a first pull): the server's objects are ours.
        with doc.models.freeze():
            for root in server_roots:
                doc.add_root(root, setter=setter)
        if isinstance(title, str) and title != doc.title:
            doc.set_title(title, setter=setter)
        return False
    theirs = collect_models(*server_roots)
    ours = {model.id: model for model in doc.models}
    target: dict[str, Model] = {}
    for model in theirs:
        local = ours.get(model.id)
        target[model.id] = local if local is not None and type(local) is type(model) else model

    def remap(value: Any) -> Any:
        ''' ``value`` with the server's model objects replaced by ours. '''
        if isinstance(value, Model):
            return target.get(value.id, value)
        if isinstance(value, dict):
            return {k: remap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [remap(v) for v in value]
        if isinstance(value, tuple):
            return tuple(remap(v) for v in value)
        if isinstance(value, set):
            return {remap(v) for v in value}
        return value

    retry = False
    with doc.models.freeze():
        # Models only the server has: point their references at our objects
        # before they join the document (no document yet, so no events).
        for model in theirs:
            if target[model.id] is model:
                for name, value in model.properties_with_values(include_defaults=False).items():
                    model.set_from_json(name, remap(value))
        # Models both have: the server's values, except what we changed since.
        for model in theirs:
            local = target[model.id]
            if local is model:
                continue
            server_set = model.properties_with_values(include_defaults=False)
            names = set(server_set) | set(local.properties_with_values(include_defaults=False))
            for name in sorted(names):
                if name not in server_set and _unstable_default(local, name):
                    continue  # a default made on first use (a fresh Toolbar...): not comparable
                value = remap(getattr(model, name))
                touch = pending.touches.get((model.id, name))
                if touch is not None:
                    value, inexact = _keep_ours(local, name, value, touch)
                    retry |= inexact
                    if value is _KEEP:
                        continue
                if not local.lookup(name).property.matches(value, getattr(local, name)):
                    local.set_from_json(name, value, setter=setter)
        wanted = [target[root.id] for root in server_roots]
        if [id(r) for r in doc.roots] != [id(r) for r in wanted]:
            if pending.touches.get(("", "roots")):
                retry = True  # roots we added or removed are not in the snapshot yet
            else:
                for root in list(doc.roots):
                    doc.remove_root(root, setter=setter)
                for root in wanted:
                    doc.add_root(root, setter=setter)
    if isinstance(title, str) and title != doc.title and not pending.touches.get(("", "title")):
        doc.set_title(title, setter=setter)
    return retry


#: Keep the local value.
_KEEP = object()


def _config(doc: Document, config: Any, setter: Any) -> None:
    ''' The server's document configuration (bokeh >= 3.5 sends one), onto ours in place. '''
    local = getattr(doc, "config", None)
    if not isinstance(config, Model) or not isinstance(local, Model) or type(local) is not type(config):
        return
    for name, value in config.properties_with_values(include_defaults=True).items():
        if not local.lookup(name).property.matches(value, getattr(local, name)):
            local.set_from_json(name, value, setter=setter)


def _keep_ours(local: Model, name: str, server_value: Any, touch: Touch) -> tuple[Any, bool]:
    ''' The value to give a property our pending changes touch, and whether
    that is inexact.
    '''
    if touch.replaced:
        return _KEEP, False  # ours overwrites the server's value there too
    if touch.streams and not touch.patches and not touch.columns and touch.exact \
            and len(touch.rollovers) == 1 and isinstance(server_value, Mapping):
        # The server's rows, then the rows of ours it has not applied yet.
        current = getattr(local, name)
        if set(server_value) == set(current):
            [rollover] = touch.rollovers
            rows = touch.rows
            return {c: concat_rows(server_value[c], current[c][max(0, len(current[c]) - rows):], rollover)
                    for c in server_value}, False
    return _KEEP, True


def _unstable_default(model: Model, name: str) -> bool:
    ''' Whether the property's default is made afresh for each object (a model, a list...). '''
    try:
        return bool(model.lookup(name).property._may_have_unstable_default())
    except AttributeError:
        return True


def unknown_model_types(content: Any) -> list[str]:
    ''' The model type names in serialized document content (a PULL-DOC-REPLY's,
    or a PATCH-DOC's) that no model class of this process has, sorted.
    '''
    from bokeh.model import Model
    known = Model.model_class_reverse_map
    found: set[str] = set()
    stack = [content]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("name")
            if item.get("type") == "object" and isinstance(name, str) and name not in known and name != "Figure":
                found.add(name)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return sorted(found)


def unknown_model_error(names: list[str], url: str | None) -> UnknownModelType:
    ''' The error for a document whose model types ``names`` this process lacks. '''
    modules = sorted({name.rsplit(".", 1)[0] for name in names if "." in name})
    packages = sorted({module.split(".", 1)[0] for module in modules})
    types = ", ".join(repr(name) for name in names)
    if modules:
        todo = (f"import {', '.join(modules)} before pulling (i.e. `import {', '.join(packages)}`)"
                if modules != packages else f"`import {', '.join(packages)}` before pulling")
    else:
        todo = "define or import the model classes of those names before pulling"
    message = (f"the session's document uses model type(s) {types}, which this process does not define: "
               f"{todo}. A client needs the same model classes as the server (bokehsync does not import "
               "modules named by a server)")
    first = names[0]
    return UnknownModelType(message, url, type_name=first,
                            module=first.rsplit(".", 1)[0] if "." in first else "", type_names=tuple(names))
