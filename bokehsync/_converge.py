''' What to do with a server change that crosses changes of ours still on
their way to the server. No sockets, no document: pure decisions.

The Bokeh server handles one connection's messages in order, and on that
connection it sends our OKs and the broadcasts of other clients' changes in
the order in which it applied them. So a broadcast of another client's change
that arrives while a change of ours is unacknowledged (or still queued) was
applied on the server *before* ours (a change the server's own callbacks make
in reaction to ours also arrives before our OK, but was applied after ours:
see the skip rule below): the server's final state is "theirs, then ours", while our
document already holds "ours", and applying theirs naively makes it "ours,
then theirs". The rules below give each server event the local treatment
that ends in the server's state (``tests/unit/test_converge.py``):

=====================  ==========================  =================================================
server event           our pending change, same    treatment
                       model and property
=====================  ==========================  =================================================
any                    none                        apply
property set, data     a set or a full data        skip: ours overwrites it on the server too; but
replaced, stream,      replacement                 a server callback reacting to ours sets it after
patch, title                                       ours, and reaches us before our OK as well: unless
                                                   it sets the value we have, resynchronise once our
                                                   changes are acknowledged (``_crossing``)
stream                 streams only, all with the  reorder: their rows go before our pending rows,
                       same ``rollover`` (or none)  then the rollover applies
stream (no rollover)   patches only                apply: rows are added after every patched index
patch                  streams only, no rollover   apply: it patches rows older than ours
patch                  patches, other indices      apply: they commute
data replaced          streams only, same rollover  apply, then our pending rows again after it; and
                                                   resynchronise (a server callback replacing the
                                                   data in reaction to our streams did so after them)
anything else          anything                    apply, then resynchronise once our changes are
                                                   acknowledged (pull; the server's state wins)
=====================  ==========================  =================================================

Roots added or removed on both sides are resynchronised (their order would
differ); events of other kinds (messages) are applied.
'''
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

__all__ = (
    'Action',
    'Pending',
    'Touch',
    'decide',
    'key_of',
)

#: Keys of what a change touches: (model id, property name), or the document's roots or title.
ROOTS = ("", "roots")
TITLE = ("", "title")


class Action(Enum):
    ''' What to do with one server event. '''
    APPLY = "apply"
    SKIP = "skip"
    REORDER = "reorder"        # a stream: put its rows before our pending ones
    REAPPEND = "reappend"      # a data replacement: put our pending rows after it
    RESYNC = "resync"          # apply, and pull once our changes are acknowledged


@dataclass
class Touch:
    ''' What our pending changes do to one key. '''
    replaced: bool = False                      # a property set, or all of a source's data replaced
    columns: set[str] = field(default_factory=set)  # columns replaced one by one
    rows: int = 0                                # rows streamed
    rollovers: set[int | None] = field(default_factory=set)
    patched: set[tuple[str, int]] = field(default_factory=set)  # (column, row) patched
    patches_exact: bool = True                   # every patched index is a plain row number
    exact: bool = True                           # every stream's row count is known

    @property
    def streams(self) -> bool:
        return bool(self.rollovers)

    @property
    def patches(self) -> bool:
        return bool(self.patched) or not self.patches_exact

    def merge(self, other: Touch) -> None:
        ''' Add what ``other`` counts (changes of the same key made elsewhere in the queue). '''
        self.replaced |= other.replaced
        self.columns |= other.columns
        self.rows += other.rows
        self.rollovers |= other.rollovers
        self.patched |= other.patched
        self.patches_exact &= other.patches_exact
        self.exact &= other.exact


class Pending:
    ''' What the changes not yet applied by the server touch, by key. '''

    def __init__(self) -> None:
        self.touches: dict[tuple[str, str], Touch] = {}

    def __bool__(self) -> bool:
        return bool(self.touches)

    def _touch(self, key: tuple[str, str]) -> Touch:
        touch = self.touches.get(key)
        if touch is None:
            touch = self.touches[key] = Touch()
        return touch

    def merge(self, other: Pending) -> None:
        ''' Add what ``other`` counts; ``other`` is left as it was. '''
        for key, touch in other.touches.items():
            self._touch(key).merge(touch)

    def add_rep(self, rep: Mapping[str, Any]) -> None:
        ''' Count an event as serialized in one of our PATCH-DOCs (its JSON). '''
        kind = rep.get("kind")
        if kind == "TitleChanged":
            self._touch(TITLE).replaced = True
            return
        if kind in ("RootAdded", "RootRemoved"):
            self._touch(ROOTS).replaced = True
            return
        model = rep.get("model")
        if not isinstance(model, Mapping) or kind == "MessageSent":
            return
        touch = self._touch((str(model.get("id")), str(rep.get("attr"))))
        if kind == "ModelChanged":
            touch.replaced = True
        elif kind == "ColumnDataChanged":
            cols = rep.get("cols")
            if cols is None:
                touch.replaced = True
            else:
                touch.columns.update(cols)
        elif kind == "ColumnsStreamed":
            touch.rollovers.add(rep.get("rollover"))
            rows = _rows_of(_entries(rep.get("data")))
            if rows is None:
                touch.exact = False
            else:
                touch.rows += rows
        elif kind == "ColumnsPatched":
            for column, entries in _entries(rep.get("patches")).items():
                for entry in entries if isinstance(entries, list) else []:
                    index = entry[0] if isinstance(entry, list) and entry else None
                    if isinstance(index, int) and not isinstance(index, bool):
                        touch.patched.add((column, index))
                    else:
                        touch.patches_exact = False
        else:
            touch.replaced = True  # an unknown kind: assume the worst

    def add_stream(self, model_id: str, attr: str, rows: int, rollover: int | None) -> None:
        ''' Count streams not serialized yet (``_coalesce.QueuedStream``). '''
        touch = self._touch((model_id, attr))
        touch.rollovers.add(rollover)
        touch.rows += rows

    def add_event(self, kind: str, model_id: str | None, attr: str | None) -> None:
        ''' Count a change not serialized yet (a property set, title or root change). '''
        if kind == "TitleChanged":
            self._touch(TITLE).replaced = True
        elif kind in ("RootAdded", "RootRemoved"):
            self._touch(ROOTS).replaced = True
        elif model_id is not None and kind != "MessageSent":
            self._touch((model_id, str(attr))).replaced = True


def key_of(event: Mapping[str, Any]) -> tuple[str, str] | None:
    ''' The (model id, property) key a decoded server event changes; None for
    events of no model property (title, roots, messages).
    '''
    model = event.get("model")
    if model is None or event.get("kind") in ("MessageSent", "RootAdded", "RootRemoved"):
        return None
    return (str(model.id), str(event.get("attr")))


def decide(event: Mapping[str, Any], pending: Pending) -> tuple[Action, Touch | None]:
    ''' The treatment of one decoded server event (``kind``, ``model`` as a
    model object, ``attr``...), given our pending changes.

    Returns:
        tuple : the action, and the pending touch of the event's key (None if none)
    '''
    kind = event.get("kind")
    if kind == "TitleChanged":
        touch = pending.touches.get(TITLE)
        return (Action.SKIP if touch else Action.APPLY), touch
    if kind in ("RootAdded", "RootRemoved"):
        touch = pending.touches.get(ROOTS)
        return (Action.RESYNC if touch else Action.APPLY), touch
    key = key_of(event)
    if key is None:
        return Action.APPLY, None
    touch = pending.touches.get(key)
    if touch is None:
        return Action.APPLY, None
    if touch.replaced:
        return Action.SKIP, touch
    if touch.columns or not touch.exact:
        return Action.RESYNC, touch
    rollover = event.get("rollover")
    if kind == "ColumnsStreamed":
        if touch.patches:
            return (Action.APPLY if rollover is None and not touch.streams else Action.RESYNC), touch
        if touch.rollovers == {rollover}:
            return Action.REORDER, touch
        return Action.RESYNC, touch
    if kind == "ColumnsPatched":
        if touch.streams and touch.rollovers != {None}:
            return Action.RESYNC, touch
        if not touch.patches:
            return Action.APPLY, touch
        theirs = _patched_by(event.get("patches"))
        if theirs is None or not touch.patches_exact or theirs & touch.patched:
            return Action.RESYNC, touch
        return Action.APPLY, touch
    if kind in ("ModelChanged", "ColumnDataChanged") and event.get("cols") is None:
        if touch.streams and not touch.patches and len(touch.rollovers) == 1:
            return Action.REAPPEND, touch
    return Action.RESYNC, touch


def _entries(rep: Any) -> dict[str, Any]:
    ''' A serialized map (``{"type": "map", "entries": [...]}`` or a plain dict) as a dict. '''
    if isinstance(rep, Mapping):
        if rep.get("type") == "map":
            return {str(k): v for k, v in rep.get("entries", [])}
        return {str(k): v for k, v in rep.items()}
    return {}


def _rows_of(columns: Mapping[str, Any]) -> int | None:
    ''' The row count of serialized columns (all have the same), or None if unknown. '''
    for rep in columns.values():
        if isinstance(rep, list):
            return len(rep)
        if isinstance(rep, Mapping) and isinstance(rep.get("shape"), list) and rep["shape"]:
            return int(rep["shape"][0])
        return None
    return 0


def _patched_by(patches: Any) -> set[tuple[str, int]] | None:
    ''' The (column, row) pairs a decoded patch touches; None if an index is
    not a plain row number (a slice, or a multi-dimensional index).
    '''
    out: set[tuple[str, int]] = set()
    if not isinstance(patches, Mapping):
        return None
    for column, entries in patches.items():
        for entry in entries if isinstance(entries, Iterable) else []:
            index = entry[0]
            if not isinstance(index, int) or isinstance(index, bool):
                return None
            out.add((str(column), index))
    return out
