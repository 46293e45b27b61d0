''' Bokeh message assembly without sockets. '''
from __future__ import annotations

import json

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource
from hypothesis import given, settings
from hypothesis import strategies as st

from bokehsync import ProtocolViolation
from bokehsync._compat import DOC_MESSAGES_HAVE_BUFFERS
from bokehsync._pending import Pending
from bokehsync._wire import PROTOCOL, Assembler, fragments


def _header(msgtype: str = "OK", **extra) -> str:
    return json.dumps({"msgid": "1", "msgtype": msgtype, **extra})


def test_round_trip_with_buffers():
    ''' A PULL-DOC-REPLY with binary buffers survives fragments() and Assembler. '''
    doc = Document()
    doc.add_root(ColumnDataSource(data={"a": np.arange(5, dtype=np.float64)}))
    push = PROTOCOL.create("PUSH-DOC", doc)
    assembler = Assembler()
    out = None
    for fragment in fragments(push):
        out = assembler.feed(fragment if isinstance(fragment, str) else bytes(fragment))
    # bokeh < 3.9 inlines the array as base64 instead of sending a buffer.
    assert out is not None and out.msgtype == "PUSH-DOC" and len(out.buffers) == int(DOC_MESSAGES_HAVE_BUFFERS)
    target = Document()
    out.push_to_document(target)
    np.testing.assert_array_equal(target.roots[0].data["a"], np.arange(5.0))


@pytest.mark.parametrize("sequence, what", [
    ([b"binary"], "expected a text header"),
    (["not json"], "not valid JSON"),
    ([json.dumps({"msgid": "1"})], "without msgtype"),
    ([_header("NOPE"), "{}", "{}"], "unknown or malformed"),
    ([_header(num_buffers=1), "{}", "{}", '{"idx": 1}'], "malformed buffer header"),
    ([_header(num_buffers=1), "{}", "{}", b"x"], "expected a text buffer header"),
    ([_header(num_buffers=1), "{}", "{}", '{"id": "b"}', "text"], "expected a binary buffer payload"),
    ([_header(num_buffers=-1)], "bad num_buffers"),
    ([_header(), "{}", "{broken"], "could not be decoded"),
])
def test_violations_are_named(sequence, what):
    ''' Each malformed sequence raises ProtocolViolation saying what was wrong. '''
    assembler = Assembler("ws://x/ws")
    with pytest.raises(ProtocolViolation, match=what) as info:
        for fragment in sequence:
            assembler.feed(fragment)
    assert "ws://x/ws" in str(info.value)


LONG_TEXT = "x" * 300
V = "bokeh protocol violation: "


@pytest.mark.parametrize("sequence, message", [
    ([b"binary"], "expected a text header, got a binary message"),
    ([_header(), b"binary"], "expected a text metadata, got a binary message"),
    ([_header(), "{}", b"binary"], "expected a text content, got a binary message"),
    (["{" + LONG_TEXT], f"header is not valid JSON: {('{' + LONG_TEXT)[:200]!r}"),
    ([json.dumps({"msgid": "1", "pad": LONG_TEXT})],
     f"header without msgtype/msgid: {json.dumps({'msgid': '1', 'pad': LONG_TEXT})[:200]!r}"),
    ([_header(num_buffers="2")], "bad num_buffers '2'"),
    ([_header(num_buffers=1), "{}", "{}", b"x"], "expected a text buffer header, got a binary message"),
    ([_header(num_buffers=1), "{}", "{}", '{"id": "b"}', "text"],
     "expected a binary buffer payload, got a text message"),
    ([_header(num_buffers=1), "{}", "{}", "[" + LONG_TEXT],
     f"buffer header is not valid JSON: {('[' + LONG_TEXT)[:200]!r}"),
    ([_header(num_buffers=1), "{}", "{}", json.dumps({"id": "a", "pad": LONG_TEXT})],
     f"malformed buffer header {json.dumps({'id': 'a', 'pad': LONG_TEXT})[:200]!r}"),
])
def test_violation_messages_exactly(sequence, message):
    ''' The exact message of each violation: what was expected, what came, the start (200 characters)
    of what came, and the URL. '''
    assembler = Assembler("ws://x/ws")
    with pytest.raises(ProtocolViolation) as info:
        for fragment in sequence:
            assembler.feed(fragment)
    assert str(info.value) == f"{V}{message} [ws://x/ws]"
    assert info.value.url == "ws://x/ws"


def test_a_message_with_several_buffers_assembles_them_all_in_order():
    ''' Three buffers, each a text header then binary bytes, all land in the message, in order. '''
    assembler = Assembler()
    for fragment in (_header("PULL-DOC-REPLY", reqid="r", num_buffers=3), "{}", json.dumps({"doc": {}})):
        assert assembler.feed(fragment) is None
    out = None
    for k in range(3):
        assert assembler.feed(json.dumps({"id": f"b{k}"})) is None
        out = assembler.feed(bytes([k]) * (k + 1))
        assert (out is None) == (k < 2)
    assert [(b.id, bytes(b.data)) for b in out.buffers] == [("b0", b"\x00"), ("b1", b"\x01\x01"), ("b2", b"\x02" * 3)]


def test_a_message_without_num_buffers_completes_after_its_content():
    ''' No num_buffers means none: the message completes with its third fragment, and the next
    message starts fresh. '''
    assembler = Assembler()
    assert assembler.feed(_header("OK")) is None
    assert assembler.feed("{}") is None
    first = assembler.feed("{}")
    assert first is not None and first.msgtype == "OK" and first.buffers == []
    assert assembler.feed(_header("OK")) is None and assembler.partial_header["msgtype"] == "OK"


def test_size_groups_keep_order_and_bound_size():
    ''' Queued events split, in order, into runs of bounded estimated size. '''
    from bokehsync._events import PATCH_BYTES, event_bytes, size_groups

    class Streamed:
        def __init__(self, k: int, rows: int) -> None:
            self.k = k
            self.data = {"x": np.zeros(rows)}
    events = [Streamed(k, 100_000) for k in range(30)]
    groups = list(size_groups(events))
    assert [e.k for g in groups for e in g] == list(range(30))
    assert len(groups) > 1
    assert all(sum(event_bytes(e) for e in g) <= PATCH_BYTES or len(g) == 1 for g in groups)


def test_pending_fail_all_fails_later_adds():
    ''' After fail_all, new requests fail at once with the same cause. '''
    pending = Pending()
    early = pending.add("a")
    cause = RuntimeError("gone")
    pending.fail_all(cause)
    assert early.exception() is cause and pending.add("b").exception() is cause


def test_pending_remembers_abandoned_ids():
    ''' A timed-out request's id is remembered so its late reply is not a violation. '''
    pending = Pending()
    pending.add("a")
    pending.abandon("a")
    assert pending.was_abandoned("a") and pending.pop("a") is None and len(pending) == 0


_fragment = st.one_of(
    st.sampled_from([_header(), _header("PATCH-DOC"), _header(num_buffers=1), "{}", '{"id": "x"}',
                     '{"events": []}', "[]", "null"]),
    st.text(max_size=20),
    st.binary(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_fragment, max_size=12))
def test_fuzz_assembly_raises_only_protocol_violation(sequence):
    ''' Random fragment sequences either assemble or raise ProtocolViolation, never anything else. '''
    assembler = Assembler()
    try:
        for fragment in sequence:
            assembler.feed(fragment)
    except ProtocolViolation:
        pass


def test_a_change_that_can_fail_goes_first_in_its_patch_doc():
    ''' Merging never puts a patch or stream after other changes in one PATCH-DOC: the server keeps (and
    never broadcasts) what a rejected PATCH-DOC applied before the failing change. Streams to one source
    with the same columns still merge, as do property sets after a risky change. '''
    from bokeh.models import Range1d

    from bokehsync._wire import merge_runs
    document = Document()
    source = ColumnDataSource(data={"x": np.zeros(3)})
    other = ColumnDataSource(data={"y": np.zeros(3)})
    r = Range1d()
    for model in (source, other, r):
        document.add_root(model)
    events: list = []

    class Recorder:
        def _document_patched(self, event):
            events.append(event)
    document.callbacks.on_change_dispatch_to(Recorder())

    plan = [lambda: setattr(r, "start", 1), lambda: source.stream({"x": np.ones(1)}),
            lambda: source.stream({"x": np.ones(2)}), lambda: setattr(r, "start", 2),
            lambda: source.patch({"x": [(0, 5.0)]}), lambda: setattr(r, "end", 9),
            lambda: other.stream({"y": np.ones(1)}), lambda: source.stream({"x": np.ones(1)})]
    messages = []
    for change in plan:
        change()
        messages.append(PROTOCOL.create("PATCH-DOC", events[-1:]))
    merged = merge_runs(messages)
    kinds = [[e["kind"] for e in m.content["events"]] for m in merged]
    assert kinds == [["ModelChanged"], ["ColumnsStreamed", "ColumnsStreamed", "ModelChanged"],
                     ["ColumnsPatched", "ModelChanged"], ["ColumnsStreamed"], ["ColumnsStreamed"]]
