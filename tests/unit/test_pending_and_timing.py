''' The table of pending replies, deadlines and the keepalive schedule, without sockets.
(The clock is replaced inside the module under test only, never process-wide.) '''
from __future__ import annotations

import math
from concurrent.futures import Future
from types import SimpleNamespace

import pytest

from bokehsync import _deadline, _keepalive, _pending
from bokehsync._deadline import Deadline, check_timeout
from bokehsync._keepalive import Keepalive
from bokehsync._pending import Pending


class Clock:
    ''' A ``time.monotonic`` stand-in that moves only when told. '''

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# Pending ------------------------------------------------------------------------------

def test_pending_resolves_by_id_and_forgets():
    ''' pop() hands out the entry of that id, once; other entries stay. '''
    pending = Pending()
    a, b = pending.add("a"), pending.add("b", on_reply=len)
    assert len(pending) == 2
    entry = pending.pop("b")
    assert entry is not None and entry.future is b and entry.on_reply is len
    assert pending.pop("b") is None and len(pending) == 1
    first = pending.pop("a")
    assert first is not None and (first.future, first.on_reply) == (a, None) and len(pending) == 0
    assert isinstance(a, Future) and not a.done()


def test_pending_fail_all_fails_every_waiter_and_every_later_add():
    ''' After fail_all, waiting futures and new ones fail with the first cause; a later cause does not replace it. '''
    pending = Pending()
    early = pending.add("a")
    done = pending.add("b")
    done.set_result("ok")
    cause = RuntimeError("gone")
    pending.fail_all(cause)
    assert early.exception() is cause and done.result() == "ok"
    assert len(pending) == 0
    pending.fail_all(RuntimeError("later"))
    late = pending.add("c")
    assert late.done() and late.exception() is cause
    assert len(pending) == 0


def test_pending_abandoned_ids_are_remembered_and_bounded(monkeypatch):
    ''' An abandoned request is forgotten and its id remembered, up to a bound (oldest forgotten first);
    abandoning an unknown or answered id remembers nothing. '''
    monkeypatch.setattr(_pending, "_ABANDONED_MEMORY", 3)
    pending = Pending()
    for name in "abcd":
        pending.add(name)
    pending.abandon("zzz")
    assert not pending.was_abandoned("zzz")
    pending.pop("d")
    pending.abandon("d")
    assert not pending.was_abandoned("d")
    for name in "abc":
        pending.abandon(name)
    assert [pending.was_abandoned(n) for n in "abc"] == [True, True, True] and len(pending) == 0
    for name in "xy":
        pending.add(name)
        pending.abandon(name)
    assert [pending.was_abandoned(n) for n in "abcxy"] == [False, False, True, True, True]


# Deadline -----------------------------------------------------------------------------

@pytest.mark.parametrize("good", [0.001, 1, 2.5, 1e9])
def test_check_timeout_accepts_positive_finite_numbers(good):
    ''' A positive, finite int or float passes, as a float. '''
    assert check_timeout(good) == float(good) and isinstance(check_timeout(good), float)


@pytest.mark.parametrize("bad", [0, 0.0, -1, -0.5, math.inf, -math.inf, math.nan, True, False, "3", None])
def test_check_timeout_refuses_the_rest_naming_the_argument(bad):
    ''' Zero, negative, infinite, NaN, bools and non-numbers raise ValueError naming the argument. '''
    with pytest.raises(ValueError, match=r"^ping_timeout must be a positive number of seconds, got "):
        check_timeout(bad, "ping_timeout")
    with pytest.raises(ValueError, match=r"^timeout must be"):
        check_timeout(bad)


def test_deadline_counts_down_and_expires(monkeypatch):
    ''' remaining() counts down from the timeout, never below zero; expired from the moment it is reached. '''
    clock = Clock()
    monkeypatch.setattr(_deadline, "time", SimpleNamespace(monotonic=clock))
    deadline = Deadline(2.0)
    assert deadline.timeout == 2.0 and deadline.at == 1002.0
    assert deadline.remaining() == 2.0 and not deadline.expired
    clock.now = 1001.5
    assert deadline.remaining() == 0.5 and not deadline.expired
    clock.now = 1002.0
    assert deadline.remaining() == 0.0 and deadline.expired
    clock.now = 1010.0
    assert deadline.remaining() == 0.0 and deadline.expired


# Keepalive ----------------------------------------------------------------------------

@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(_keepalive, "time", SimpleNamespace(monotonic=clock))
    return clock


def test_keepalive_off_never_waits_for_a_deadline(clock):
    ''' interval None: no deadline, and running out of a wait is never a dead peer. '''
    keepalive = Keepalive(None, 5.0)
    assert keepalive.deadline() is None and not keepalive.expired()


def test_keepalive_pings_after_silence_then_declares_death(clock):
    ''' Silence for the interval: time to ping (not dead); after a ping, the deadline is ping time plus
    timeout, and only then is the peer dead. '''
    keepalive = Keepalive(2.0, 5.0)
    assert keepalive.deadline() == 1002.0
    clock.now = 1002.0
    assert not keepalive.expired()  # time to ping, not dead
    keepalive.pinged()
    assert keepalive.deadline() == 1007.0
    clock.now = 1006.9
    assert not keepalive.expired()
    clock.now = 1007.0
    assert keepalive.expired()


def test_keepalive_traffic_resets_the_schedule(clock):
    ''' Bytes from the peer, even after a ping, move the next ping an interval on and forget the ping. '''
    keepalive = Keepalive(2.0, 5.0)
    clock.now = 1003.0
    keepalive.pinged()
    clock.now = 1004.0
    keepalive.traffic()
    assert keepalive.deadline() == 1006.0
    clock.now = 1100.0
    assert not keepalive.expired()
