''' What goes out, without sockets: change sizes and grouping (_events), merging PATCH-DOCs and
encoding messages as frames (_wire), masked frames and close payloads (_frames). '''
from __future__ import annotations

import json
import logging
import struct

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.document.events import ColumnDataChangedEvent, ColumnsPatchedEvent, ColumnsStreamedEvent
from bokeh.models import ColumnDataSource, Range1d
from websocket import ABNF

from bokehsync import _events, _frames, _wire
from bokehsync._events import EAGER_BYTES, PATCH_BYTES, event_bytes, is_heavy, size_groups
from bokehsync._wire import PROTOCOL, Assembler, encode_messages, fragments, merge_patches, merge_runs, patch_bytes


class Event:
    ''' A stand-in with just the attributes _events looks at. '''

    def __init__(self, **attrs: object) -> None:
        self.__dict__.update(attrs)


# _events ------------------------------------------------------------------------------

def test_event_bytes_counts_columns_arrays_and_lists():
    ''' 256 bytes of overhead, plus each column's nbytes (16 per item of a list, 16 for a scalar),
    for ``data``, ``new`` and ``patches`` alike, plus a bare array's nbytes. '''
    assert event_bytes(Event()) == 256
    assert event_bytes(Event(data={"a": np.zeros(10), "b": [1, 2, 3]})) == 256 + 80 + 48
    assert event_bytes(Event(new={"a": 7})) == 256 + 16
    assert event_bytes(Event(patches={"a": [(0, 1)]})) == 256 + 16
    assert event_bytes(Event(new=np.zeros(4, dtype=np.int16))) == 256 + 8
    assert event_bytes(Event(new="text", data=None)) == 256
    assert event_bytes(Event(data={"a": np.zeros(2)}, new={"b": np.zeros(3)}, patches={"c": [1]})) == 256 + 16 + 24 + 16


def test_column_events_are_heavy_scalar_changes_are_not():
    ''' Column events are serialized at once whatever their size; a scalar property change never is;
    anything else once it is estimated above EAGER_BYTES (not at it). '''
    for cls in (ColumnsStreamedEvent, ColumnsPatchedEvent, ColumnDataChangedEvent):
        assert is_heavy(object.__new__(cls))
    for scalar in (5, 2.5, "s", True, None):
        assert not is_heavy(Event(new=scalar))
    at_limit = EAGER_BYTES - 256
    assert not is_heavy(Event(new=np.zeros(at_limit, dtype=np.uint8)))
    assert is_heavy(Event(new=np.zeros(at_limit + 1, dtype=np.uint8)))
    assert is_heavy(Event(new=1, data={"x": np.zeros(at_limit + 1, dtype=np.uint8)}))  # data: not a scalar change
    assert not is_heavy(Event(new=[1, 2]))


def test_size_groups_fill_up_to_the_limit_in_order(monkeypatch):
    ''' Events go, in order, into groups of at most PATCH_BYTES estimated bytes (exactly the limit
    fits); an event larger than the limit gets a group of its own; nothing for no events. '''
    monkeypatch.setattr(_events, "PATCH_BYTES", 1256)
    half = [Event(k=k, new=np.zeros(372, dtype=np.uint8)) for k in range(5)]  # 628 bytes each: two fit
    groups = list(size_groups(half))
    assert [[e.k for e in g] for g in groups] == [[0, 1], [2, 3], [4]]
    big = Event(k="big", new=np.zeros(5000, dtype=np.uint8))
    groups = list(size_groups([half[0], big, half[1]]))
    assert [[e.k for e in g] for g in groups] == [[0], ["big"], [1]]
    assert list(size_groups([])) == []
    assert PATCH_BYTES == 4 * 1024 * 1024


# _wire: merging -----------------------------------------------------------------------

def _patches(n: int) -> tuple[object, list]:
    ''' The document before the changes (as JSON), and ``n`` PATCH-DOCs as bokeh makes them, each
    for one change of a range. '''
    doc = Document()
    r = Range1d(start=0, end=1, name="r")
    doc.add_root(r)
    before = doc.to_json()
    events: list = []
    doc.on_change(lambda event: events.append(event))
    patches = []
    for k in range(1, n + 1):
        r.start = k
        patches.append(PROTOCOL.create("PATCH-DOC", [events[-1]]))
    return before, patches


def _patch_with(content: dict) -> object:
    _, [patch] = _patches(1)
    cls = type(patch)
    return cls(cls.create_header(), {}, content)


def test_merging_one_patch_is_that_patch():
    ''' A run of one is returned as it is. '''
    _, [patch] = _patches(1)
    assert merge_patches([patch]) is patch


def test_merged_patch_carries_every_event_in_order_as_json_text():
    ''' Several PATCH-DOCs become one new PATCH-DOC whose events (content and JSON text) are theirs,
    in order, and which applies to a document like them. '''
    before, patches = _patches(3)
    merged = merge_patches(patches)
    assert merged.msgtype == "PATCH-DOC" and merged.header["msgid"] not in {p.header["msgid"] for p in patches}
    assert merged.metadata == {} and merged.metadata_json == "{}"
    events = [e for p in patches for e in p.content["events"]]
    assert merged.content["events"] == events
    texts = [e for p in patches for e in json.loads(p.content_json)["events"]]
    assert json.loads(merged.content_json) == {"events": texts}
    assert merged.content_json.startswith('{"events":[') and merged.buffers == []
    target = Document.from_json(before)
    merged.apply_to_document(target)
    assert target.get_model_by_name("r").start == 3


def test_merging_patches_of_unknown_shape_lets_bokeh_encode():
    ''' A patch whose content is not just ``events`` (or not the JSON shape known) is merged through
    bokeh's own encoding; patches with no events add none. '''
    _, patches = _patches(2)
    odd = _patch_with({"events": [], "extra": 1})
    merged = merge_patches([patches[0], odd, patches[1]])
    assert json.loads(merged.content_json) == {"events": patches[0].content["events"] + patches[1].content["events"]}
    empty = _patch_with({"events": []})
    merged = merge_patches([patches[0], empty, patches[1]])
    assert json.loads(merged.content_json)["events"] == patches[0].content["events"] + patches[1].content["events"]


def test_merged_patch_keeps_every_buffer():
    ''' Binary buffers of the merged patches all come along, counted in num_buffers. '''
    doc = Document()
    source = ColumnDataSource(data={"x": np.zeros(0)})
    doc.add_root(source)
    events: list = []
    doc.on_change(lambda event: events.append(event))
    patches = []
    for k in range(2):
        source.stream({"x": np.arange(3, dtype=np.float64) + k})
        patches.append(PROTOCOL.create("PATCH-DOC", [events[-1]]))
    buffers = [b for p in patches for b in p.buffers]
    merged = merge_patches(patches)
    assert [b.id for b in merged.buffers] == [b.id for b in buffers]
    assert merged.header.get("num_buffers", 0) == len(buffers)
    assert patch_bytes(merged) == len(merged.content_json) + sum(memoryview(b.data).nbytes for b in buffers)


def test_merge_runs_merges_neighbours_only_and_splits_at_the_limit():
    ''' Runs of PATCH-DOCs merge; other messages stay where they are, splitting runs; a run is cut
    where the next patch would take it over the limit (exactly the limit fits). '''
    _, patches = _patches(5)
    request = PROTOCOL.create("SERVER-INFO-REQ")
    out = merge_runs([patches[0], patches[1], request, patches[2]])
    assert [m.msgtype for m in out] == ["PATCH-DOC", "SERVER-INFO-REQ", "PATCH-DOC"]
    assert out[1] is request and out[2] is patches[2]
    assert out[0].content["events"] == patches[0].content["events"] + patches[1].content["events"]
    size = patch_bytes(patches[0])
    assert all(patch_bytes(p) == size for p in patches)
    out = merge_runs(patches, limit=2 * size)
    assert [len(m.content["events"]) for m in out] == [2, 2, 1]
    out = merge_runs(patches, limit=2 * size - 1)
    assert [len(m.content["events"]) for m in out] == [1] * 5
    assert merge_runs([]) == [] and merge_runs([request]) == [request]


# _wire: encoding ----------------------------------------------------------------------

def _decode_client_frames(data: bytes) -> list[tuple[int, bytes]]:
    ''' Unmask and split a client's byte stream into (opcode, payload), all frames final. '''
    out, pos = [], 0
    while pos < len(data):
        b0, b1 = data[pos], data[pos + 1]
        assert b0 & 0x80 and b1 & 0x80, "every client frame is final and masked"
        n, pos = b1 & 0x7F, pos + 2
        if n == 126:
            n, pos = struct.unpack_from("!H", data, pos)[0], pos + 2
        elif n == 127:
            n, pos = struct.unpack_from("!Q", data, pos)[0], pos + 8
        key, pos = data[pos:pos + 4], pos + 4
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(data[pos:pos + n])) if n < 1 << 16 else \
            (np.frombuffer(data[pos:pos + n], np.uint8) ^ np.resize(np.frombuffer(key, np.uint8), n)).tobytes()
        out.append((b0 & 0x0F, payload))
        pos += n
    return out


def _expected_frames(messages) -> list[tuple[int, bytes]]:
    return [(_frames.OP_TEXT, f.encode()) if isinstance(f, str) else (_frames.OP_BINARY, bytes(f))
            for m in messages for f in fragments(m)]


def test_fragments_are_header_metadata_content_then_buffer_pairs():
    ''' A message goes as three text fragments, then a buffer header and the raw bytes per buffer. '''
    data = np.arange(4, dtype=np.float64)
    message = PROTOCOL.create("SERVER-INFO-REQ")
    from bokeh.core.serialization import Buffer

    from bokehsync._compat import add_buffers
    add_buffers(message, [Buffer("b1", memoryview(data))])
    out = fragments(message)
    assert out[:3] == [message.header_json, message.metadata_json, message.content_json]
    assert json.loads(out[3]) == {"id": "b1"} and bytes(out[4]) == data.tobytes() and len(out) == 5


def test_small_messages_go_as_one_write_with_the_right_frames():
    ''' Small messages are joined into one write, and that write is exactly their masked frames. '''
    _, patches = _patches(3)
    chunks = list(encode_messages(patches))
    assert len(chunks) == 1
    assert _decode_client_frames(b"".join(chunks)) == _expected_frames(patches)


def test_a_large_buffer_is_written_apart_in_pieces():
    ''' A buffer over the join limit is written apart from the small frames around it, in pieces of
    at most a mask chunk, and the whole is still exactly the right frames. '''
    message = PROTOCOL.create("SERVER-INFO-REQ")
    from bokeh.core.serialization import Buffer

    from bokehsync._compat import add_buffers
    big = np.arange(3 * (1 << 20) // 8, dtype=np.float64)
    add_buffers(message, [Buffer("big", memoryview(big))])
    before, after = _patches(2)[1]
    chunks = [bytes(c) for c in encode_messages([before, message, after])]
    assert _decode_client_frames(b"".join(chunks)) == _expected_frames([before, message, after])
    assert max(len(c) for c in chunks) <= _frames.MASK_CHUNK
    assert len(chunks) >= 2 + big.nbytes // _frames.MASK_CHUNK


def test_progress_of_a_message_counts_up_to_its_total():
    ''' A message with a progress callback reports (bytes done, total), rising, ending at the total. '''
    message = PROTOCOL.create("SERVER-INFO-REQ")
    from bokeh.core.serialization import Buffer

    from bokehsync._compat import add_buffers
    add_buffers(message, [Buffer("big", memoryview(np.zeros(300_000)))])
    seen: list[tuple[int, int | None]] = []
    message._bokehsync_progress = lambda done, total: seen.append((done, total))
    _, [small] = _patches(1)
    chunks = list(encode_messages([small, message]))
    total = sum(len(f.encode()) if isinstance(f, str) else memoryview(f).nbytes for f in fragments(message))
    assert seen[-1] == (total, total) and all(t == total for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and len(seen) > 3
    assert _decode_client_frames(b"".join(bytes(c) for c in chunks)) == _expected_frames([small, message])


def test_a_failing_progress_callback_is_logged_not_raised(caplog):
    ''' An exception in a progress callback is logged (naming the callback, with the traceback) and
    the sending goes on. '''
    def broken(done, total):
        raise ValueError("oops")
    with caplog.at_level(logging.ERROR, logger="bokehsync"):
        _wire.report_progress(broken, 1, 2)
    [record] = [r for r in caplog.records if r.name.startswith("bokehsync")]
    assert record.getMessage() == f"progress callback {broken!r} failed" and record.exc_info


def test_progress_reaches_the_total_when_the_last_piece_is_small():
    ''' The last report is (total, total) also when the message ends with a frame of exactly
    SMALL_FRAME bytes (sent as one piece with its header). '''
    from bokeh.core.serialization import Buffer

    from bokehsync._compat import add_buffers
    message = PROTOCOL.create("SERVER-INFO-REQ")
    add_buffers(message, [Buffer("b", memoryview(bytes(_frames.SMALL_FRAME)))])
    seen: list[tuple[int, int | None]] = []
    message._bokehsync_progress = lambda done, total: seen.append((done, total))
    list(encode_messages([message]))
    total = sum(len(f.encode()) if isinstance(f, str) else memoryview(f).nbytes for f in fragments(message))
    assert seen[-1] == (total, total)


def test_many_small_messages_go_in_writes_of_bounded_size():
    ''' Small frames are joined into writes of at least the join limit (but the last), each at most
    the limit plus one frame, and together exactly the frames of the messages, in order. '''
    from bokeh.core.serialization import Buffer

    from bokehsync._compat import add_buffers
    messages = []
    for k in range(40):
        message = PROTOCOL.create("SERVER-INFO-REQ")
        add_buffers(message, [Buffer(f"b{k}", memoryview(bytes([k]) * 20_000))])
        messages.append(message)
    chunks = [bytes(c) for c in encode_messages(messages)]
    limit = _wire._JOIN_LIMIT
    assert len(chunks) > 1
    assert all(limit <= len(c) <= limit + 20_100 for c in chunks[:-1]) and len(chunks[-1]) <= limit + 20_100
    assert _decode_client_frames(b"".join(chunks)) == _expected_frames(messages)


def test_a_message_after_one_with_progress_is_sent_too():
    ''' Messages after one that reports progress are encoded as well, in order. '''
    _, [first, second] = _patches(2)
    first._bokehsync_progress = lambda done, total: None
    chunks = list(encode_messages([first, second]))
    assert _decode_client_frames(b"".join(bytes(c) for c in chunks)) == _expected_frames([first, second])


def test_partial_header_while_a_message_is_assembled():
    ''' The header of the message under way is known from its first fragment until it completes. '''
    assembler = Assembler()
    assert assembler.partial_header is None
    header = {"msgid": "1", "msgtype": "PULL-DOC-REPLY", "reqid": "r", "num_buffers": 1}
    assert assembler.feed(json.dumps(header)) is None
    assert assembler.partial_header == header
    assembler.feed("{}")
    assert assembler.feed(json.dumps({"doc": {}})) is None
    assert assembler.partial_header["reqid"] == "r"
    assembler.feed(json.dumps({"id": "b"}))
    message = assembler.feed(b"\x00")
    assert message is not None and message.header["reqid"] == "r" and assembler.partial_header is None


# _frames: the client's frames ------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536])
def test_encode_frame_matches_websocket_client(size):
    ''' A small control/data frame is byte for byte what websocket-client sends with the same key. '''
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    key = b"\x11\x22\x33\x44"
    theirs = ABNF.create_frame(payload, ABNF.OPCODE_PING if size <= 125 else ABNF.OPCODE_TEXT)
    theirs.get_mask_key = lambda n: key
    opcode = _frames.OP_PING if size <= 125 else _frames.OP_TEXT
    assert _frames.encode_frame(opcode, payload, mask_key=key) == theirs.format()
    random_key = _frames.encode_frame(opcode, payload)  # a random key otherwise: same length, same payload
    assert len(random_key) == len(theirs.format()) and _decode_client_frames(random_key) == [(opcode, payload)]


def test_iter_masked_frame_pieces():
    ''' Up to SMALL_FRAME bytes come as one piece (header included); larger payloads as the header, then
    pieces of ``chunk`` bytes, the last one shorter. '''
    small = list(_frames.iter_masked_frame(_frames.OP_BINARY, bytes(_frames.SMALL_FRAME), mask_key=b"abcd"))
    assert len(small) == 1 and len(small[0]) == 4 + 4 + _frames.SMALL_FRAME
    large = list(_frames.iter_masked_frame(_frames.OP_BINARY, bytes(_frames.SMALL_FRAME + 1), mask_key=b"abcd",
                                           chunk=1024))
    assert [len(p) for p in large] == [8, 1024, 1024, 1024, 1024, 1]
    data = np.arange(10_007, dtype=np.uint8).tobytes()
    pieces = b"".join(_frames.iter_masked_frame(_frames.OP_BINARY, data, mask_key=b"\x01\x02\x03\x04", chunk=4096))
    assert _decode_client_frames(pieces) == [(_frames.OP_BINARY, data)]


def test_close_payload_truncates_the_reason_on_a_character_boundary():
    ''' The code, then at most 123 bytes of the UTF-8 reason, never half a character. '''
    assert _frames.close_payload(1000, "") == b"\x03\xe8"
    assert _frames.close_payload(4001, "bye") == struct.pack("!H", 4001) + b"bye"
    assert _frames.close_payload(40000, "") == struct.pack("!H", 40000)
    assert _frames.close_payload(1000, "x" * 200) == b"\x03\xe8" + b"x" * 123
    reason = "é" * 100  # 200 bytes; 123 would cut the 62nd character in half
    payload = _frames.close_payload(1000, reason)
    assert payload[2:].decode("utf-8") == "é" * 61
