''' Prove the tests can fail: break one behaviour at a time in a scratch copy
of the project and check that the tests meant to notice do fail.

Run from the repository root (not collected by pytest)::

    python -m tests.breakages              # every breakage
    python -m tests.breakages NAME ...     # some of them
    python -m tests.breakages --list       # the table

For each breakage the whole project (``bokehsync/``, ``tests/``, docs,
examples; not ``.git`` or ``.venv``) is copied to a temporary directory, the
breakage's edits are applied there, and pytest runs the breakage's test node
ids in that copy. The breakage is *caught* when every one of those tests fails;
*survived* otherwise. The exit status is 1 if any survived, 2 if the table is
stale (an old snippet not found exactly once, a node id that did not run) or
the unbroken baseline does not pass.

The copy, not the editable install, must be what every process imports:
pytest itself, the Bokeh servers it starts, pool workers, example scripts. So
``PYTHONPATH`` starts with the copy, and an import spy logs where each process
found ``bokehsync``; a run in which any process imported it from anywhere else
is an error. The spy is a ``.pth`` file put in the interpreter's
site-packages for the duration of the run (removed at the end; inert without
``BOKEHSYNC_IMPORT_LOG`` in the environment), so it also sees a process that
dropped ``PYTHONPATH``; where site-packages is not writable, a
``sitecustomize`` on ``PYTHONPATH`` does the job for the processes that keep it.

Editing the table: each row names the behaviour broken, the issue item it
covers, the file under ``bokehsync/``, the exact ``old`` text and its ``new``
replacement (``also`` holds further edits of the same breakage, as
``(file, old, new)``), and the node ids that must catch it. When the code
moves, re-target ``file``/``old``/``new``; the runner refuses to guess.
'''
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

D = "tests/integration/test_delivery.py"


@dataclass(frozen=True)
class Breakage:
    name: str
    item: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    also: tuple[tuple[str, str, str], ...] = ()

    def edits(self) -> list[tuple[str, str, str]]:
        return [(self.file, self.old, self.new), *self.also]


BREAKAGES = [
    # The seven numbered breakages of issue 10 ------------------------------------
    Breakage(
        "flush-waits-for-first-ack", "1. flush() waits for only the first of several unacknowledged patches",
        "connection.py",
        "            _, not_done = wait(waiting, timeout=deadline.remaining())\n"
        "            if not_done:\n",
        "            _, not_done = wait(waiting, timeout=deadline.remaining(), return_when='FIRST_COMPLETED')\n"
        "            if len(not_done) == len(waiting):\n",
        (f"{D}::test_flush_waits_for_every_unacknowledged_patch",)),
    Breakage(
        "exit-without-flush", "2. interpreter exit with an open session closes without flushing",
        "connection.py",
        'self.close("interpreter exit", timeout=min(self.timeout, 5.0))',
        'self.close("interpreter exit", flush=False, timeout=min(self.timeout, 5.0))',
        ("tests/integration/test_concurrency.py::test_burst_just_before_exit_reaches_the_server",)),
    Breakage(
        "exit-registry-emptied", "2. (the refactor's own slip) the exit registry emptied before the exit flush",
        "_process.py",
        "    forget.atexit = False\n",
        "    forget.atexit = True\n",
        ("tests/integration/test_concurrency.py::test_burst_just_before_exit_reaches_the_server",)),
    Breakage(
        "replies-to-oldest-request", "3. replies go to the oldest pending request, not the one of their reqid",
        "_reader.py",
        "            entry = self._pending.pop(reqid)\n",
        "            entry = self._pending.pop(next(iter(self._pending._entries), reqid))\n",
        (f"{D}::test_replies_are_routed_by_reqid_with_changes_in_flight",
         f"{D}::test_replies_reach_their_own_thread_with_changes_in_flight")),
    Breakage(
        "session-timeout-ignored", "4. the session's timeout= is ignored: every call waits 30 s",
        "connection.py",
        "        timeout = check_timeout(timeout)\n",
        "        timeout = check_timeout(timeout) and DEFAULT_TIMEOUT\n",
        (f"{D}::test_the_session_timeout_is_every_calls_default",)),
    Breakage(
        "no-burst-merging", "5. burst merging switched off: one PATCH-DOC per change",
        "_outbox.py",
        "PATCH_WINDOW = 1\n",
        "PATCH_WINDOW = 10**9\n",
        (f"{D}::test_a_burst_goes_as_few_merged_messages",)),
    Breakage(
        "reconnect-ignores-close", "6. the reconnect thread ignores close() and keeps trying",
        "_reconnect.py",
        "                if self._stop.wait(delay):\n                    return\n",
        "                self._stop.wait(delay)\n",
        ("tests/integration/test_reconnect.py::test_close_stops_the_reconnect_attempts",),
        also=(("_reconnect.py", "                if self._stop.is_set():\n                    return\n", ""),
              ("_link.py", "            if self.closing:\n                return ConnectionLost(",
               "            if False:\n                return ConnectionLost("))),
    Breakage(
        "push-echo-buffered", "7. the server's echo of a pushed document is buffered instead of skipped",
        "_reader.py",
        "        return self._pending.pushing and header is not None",
        "        return False and header is not None",
        (f"{D}::test_the_echo_of_a_push_is_not_buffered",)),
    # The weak tests and unasserted claims of issue 10 --------------------------
    Breakage(
        "close-does-not-flush", "weak: change just before close() (close's flush removed)",
        "connection.py",
        "        if was_open:\n            if flush and self._requests.can_wait():\n",
        "        flush = False\n        if was_open:\n            if flush and self._requests.can_wait():\n",
        (f"{D}::test_burst_just_before_close_reaches_the_server",)),
    Breakage(
        "oversize-buffered-before-refused", "weak: bad input bounds memory (size checked after buffering)",
        "_frames.py",
        "            if total > self._max:\n",
        "            if total > self._max and False:\n",
        ("tests/integration/test_bad_input.py::test_malformed_input_is_named_and_contained[oversize_message]",),
        also=(("_frames.py",
               "        self._msg_parts.append(payload)\n        self._msg_size += length\n",
               "        self._msg_parts.append(payload)\n        self._msg_size += length\n"
               "        if self._msg_size > self._max:\n"
               "            raise self._violation(f'message of at least {self._msg_size} bytes exceeds "
               "max_message_size={self._max}')\n"),)),
    Breakage(
        "close-reason-mangled", "weak: frame fuzzing (close reasons decoded wrongly, only fuzzing sees it)",
        "_frames.py",
        '        reason = bytes(payload[2:]).decode("utf-8", "replace")\n',
        '        reason = bytes(payload[2:]).decode("utf-8", "ignore")\n',
        ("tests/unit/test_frames_fuzz.py::test_parser_matches_the_reference_model",)),
    Breakage(
        "close-frame-without-reason", "weak: the fake server surfaces its own errors (its check fails the test)",
        "_link.py",
        "        self._sender.send_control(_frames.OP_CLOSE, _frames.close_payload(1000, why))\n",
        '        self._sender.send_control(_frames.OP_CLOSE, _frames.close_payload(1000, ""))\n',
        ("tests/integration/test_errors.py::test_close_sends_its_reason",)),
    Breakage(
        "second-pull-echoed", "claim: a second pull sends nothing back (neither the setter nor the flag)",
        "_docsync.py",
        "        self._applying.active = True\n",
        "        self._applying.active = False\n",
        (f"{D}::test_a_second_pull_sends_nothing_back",),
        also=(("_docsync.py", 'reply.buffers), self._setter, pending)', 'reply.buffers), None, pending)'),)),
    Breakage(
        "server-updates-dropped-during-requests", "claim: no server update dropped",
        "_reader.py",
        "            if self._pending.pushing:\n",
        "            if self._pending.pushing or len(self._pending):\n",
        (f"{D}::test_no_server_update_is_dropped",)),
    Breakage(
        "rejected-patch-not-logged", "claim: a rejected patch is logged",
        "_outbox.py",
        '            log.error("the server at %s rejected a document patch: %s", self._url, report.text)\n',
        "            pass\n",
        ("tests/integration/test_errors.py::test_rejected_patch_raises_at_flush_and_close",)),
    Breakage(
        "violation-not-network-error", "claim: error_reason == NETWORK_ERROR in every fault",
        "_reader.py",
        "            cause, code = e, 1002\n",
        "            cause, code, reason = e, 1002, ErrorReason.NO_ERROR\n",
        ("tests/integration/test_bad_input.py::test_malformed_input_is_named_and_contained[bad_json]",
         "tests/integration/test_faults.py::test_corrupted_frame_from_the_server")),
    Breakage(
        "exception-context-not-pickled", "claim: every exception pickles (with its context)",
        "exceptions.py",
        "        self._context = context\n",
        '        self._context = {k: v for k, v in context.items() if k in ("msgid", "timeout")}\n',
        ("tests/unit/test_exceptions.py::test_pickles_with_url_message_and_context[ServerError]",
         "tests/unit/test_exceptions.py::test_pickles_with_url_message_and_context[ConnectionRejected]")),
    Breakage(
        "unsupported-bokeh-imports", "claim: ImportError on an unsupported bokeh",
        "_compat.py",
        "BOKEH_VERSION = check_bokeh_version(bokeh.__version__)\n",
        "BOKEH_VERSION = _parse(bokeh.__version__)\n",
        ("tests/unit/test_compat.py::test_import_bokehsync_with_an_unsupported_bokeh_raises_import_error[3.3.4]",)),
    Breakage(
        "flush-under-lock-allowed", "claim: RuntimeError for any blocking call under session.lock",
        "connection.py",
        '        self._requests.check_can_wait("flush")\n',
        "",
        ("tests/integration/test_concurrency.py::test_blocking_call_under_the_lock_raises[flush]",)),
    Breakage(
        "close-flush-false-ignored", "claim: close(flush=False) skips the flush",
        "connection.py",
        "        flush_error: BokehSyncError | None = None\n        if was_open:\n",
        "        flush_error: BokehSyncError | None = None\n        flush = True\n        if was_open:\n",
        (f"{D}::test_close_without_flush_skips_the_flush",)),
    Breakage(
        "flush-never-times-out", "claim: flush raises ReplyTimeout with changes unacknowledged",
        "connection.py",
        "            if not_done:\n                raise ReplyTimeout(",
        "            if not_done and False:\n                raise ReplyTimeout(",
        (f"{D}::test_flush_times_out_with_unacknowledged_changes",)),
    Breakage(
        "flush-ignores-lost-patches", "claim: flush raises ConnectionLost with changes unacknowledged",
        "_outbox.py",
        "            elif report is not None:\n",
        "            elif False:\n",
        (f"{D}::test_flush_raises_connection_lost_when_the_link_dies_with_changes_unacknowledged",)),
    Breakage(
        "request-while-reconnecting-waits", "claim: a request made while reconnecting fails at once",
        "_requests.py",
        "        if not isinstance(self._link.state, CONNECTED_AFTER_ACK):\n"
        "            raise self.not_connected(what)\n",
        "        if self._link.reconnecting:  # wait for the reconnect, until the deadline\n"
        "            import threading as _t\n"
        "            _t.Event().wait(deadline.remaining())\n"
        "            raise ReplyTimeout(f'no reply to {what} within {deadline.timeout} s', self._link.url,\n"
        "                               msgid=None, timeout=deadline.timeout)\n"
        "        if not isinstance(self._link.state, CONNECTED_AFTER_ACK):\n"
        "            raise self.not_connected(what)\n",
        ("tests/integration/test_reconnect.py::test_a_request_while_reconnecting_fails_at_once",)),
    # Issue 12: nothing lost, nothing diverged ------------------------------------
    Breakage(
        "changes-after-loss-dropped", "12: a change made after the connection died is dropped silently",
        "_ledger.py",
        "        self._unsent += n\n",
        "        pass\n",
        ("tests/integration/test_integrity.py::test_a_change_after_the_server_died_raises[flush-push]",
         "tests/integration/test_integrity.py::test_a_change_after_the_server_died_raises[close-pull]")),
    Breakage(
        "crossing-writes-applied-naively", "12: a server change crossing ours is applied as it comes",
        "_docsync.py",
        "                if self.outbox.has_pending():\n",
        "                if False:\n",
        ("tests/integration/test_integrity.py::test_two_writers_of_one_property_end_equal[0-push]",)),
    Breakage(
        "no-resync", "12: a server change that cannot be applied is only logged",
        "_docsync.py",
        "        if reason is not None:\n            self.resync(reason)\n",
        "",
        ("tests/integration/test_integrity.py::test_a_third_clients_push_leaves_everyone_equal_to_the_server[push]",)),
    Breakage(
        "risky-change-merged-after-others", "12: a patch merged after other changes in one PATCH-DOC",
        "_events.py",
        '        return risk is None or self._state == "empty" or (self._state == risk and risk[0] == "stream")\n',
        "        return True\n",
        ("tests/unit/test_wire.py::test_a_change_that_can_fail_goes_first_in_its_patch_doc",)),
    # Issue 14: what bokeh.client code can tell --------------------------------------
    Breakage(
        "fork-child-not-reconnecting", "14.3: a session made before a fork is unusable in the child",
        "_link.py",
        "        if was_open:\n            self.inherited = True\n",
        "        if False:\n            self.inherited = True\n",
        ("tests/integration/test_fork.py::test_forked_child_uses_the_inherited_session[flush]",)),
    Breakage(
        "call-shapes-carry-extras", "14.1: ClientSession passes timeout=None to its connection",
        "_client.py",
        "        self._connection.close(why, **_extras(flush=None if flush else False, timeout=timeout))\n",
        "        self._connection.close(why, flush=flush, timeout=timeout)\n",
        ("tests/unit/test_call_shapes.py::test_close_default",
         "tests/unit/test_call_shapes.py::test_close_as_users_assert_it")),
    # Issue 13: documents and changes of any size -------------------------------------
    Breakage(
        "push-not-split", "13: a push over the server's limit goes as one message",
        "_split.py",
        "    inline = not DOC_MESSAGES_HAVE_BUFFERS\n",
        "    return None\n    inline = not DOC_MESSAGES_HAVE_BUFFERS\n",
        ("tests/integration/test_split.py::test_a_push_over_the_limit_arrives_whole_with_progress_over_every_part",)),
    Breakage(
        "cut-stream-drops-rollover", "13: the parts of a cut stream lose its rollover",
        "_cutter.py",
        '        rollover = None if replace else rep.get("rollover")\n',
        "        rollover = None\n",
        ("tests/integration/test_split.py::test_a_change_over_the_limit_arrives_whole_everywhere[stream]",)),
    Breakage(
        "simple-model-ids", "12: models made here keep bokeh's per-process counter ids",
        "_ids.py",
        "        settings.simple_ids.set_value(False)\n",
        "        pass\n",
        ("tests/integration/test_ids.py::test_a_model_made_here_never_takes_the_id_of_a_model_from_the_server",
         "tests/integration/test_ids.py::test_models_made_in_forked_workers_all_reach_the_shared_session")),
    Breakage(
        "crossing-stream-mixed-rollovers-naive", "12: a crossing stream with no exact rule put after our pending rows",
        "_crossing.py",
        "    if not touch.streams or not touch.exact or touch.columns or touch.replaced:\n",
        "    if not touch.streams or not touch.exact or touch.columns or touch.replaced \\\n"
        "            or len(touch.rollovers) != 1:\n",
        ("tests/unit/test_crossing.py::test_a_crossing_stream_then_a_resync_ends_as_the_server[ours0-5]",)),
    Breakage(
        "crossing-patch-over-our-rows", "12: a crossing patch or column applied over our pending rows",
        "_crossing.py",
        "            if action is Action.RESYNC and touch is not None and touch.streams:\n",
        "            if action is Action.RESYNC and touch is not None and _keep_ours_last(event, touch, setter):\n",
        ("tests/unit/test_crossing.py::test_a_crossing_patch_or_column_leaves_our_pending_rows_to_the_resync[patch]",
         "tests/unit/test_crossing.py::test_a_crossing_patch_or_column_leaves_our_pending_rows_to_the_resync[column]"),
        also=(("_crossing.py", "                _keep_ours_last(event, touch, setter)\n", "                pass\n"),)),
    Breakage(
        "left-to-resync-forgotten", "12: a source left to the resync takes later server patches over our rows",
        "_crossing.py",
        "            if key is not None and key in left_to_resync:\n",
        "            if False:\n",
        ("tests/unit/test_crossing.py::test_a_source_left_to_the_resync_stays_left_to_it_until_the_reply",)),
    Breakage(
        "removed-reference-not-resynced", "12: a server patch naming a model we removed is dropped, no resync",
        "_crossing.py",
        "        if doc.models.seen(e.id):\n",
        "        if doc.models.seen(e.id):\n            return None\n",
        ("tests/unit/test_crossing.py::test_a_server_change_naming_a_model_we_removed_resyncs",)),
    Breakage(
        "left-to-resync-never-cleared", "12: what was left to a resync stays left after its reply",
        "_docsync.py",
        "            if ours and not again:\n",
        "            if False:\n",
        ("tests/unit/test_crossing.py::test_what_was_left_to_the_resync_is_forgotten_once_its_reply_is_applied",)),
    Breakage(
        "dropped-patch-not-reported", "12: a patch the server drops (it names a removed model) passes flush",
        "_docsync.py",
        "        if removed:\n",
        "        if False:\n",
        ("tests/integration/test_integrity.py::test_a_change_the_server_drops_is_reported_at_flush",)),
    Breakage(
        "column-assignment-sent-as-is", "12: source.data[col] = ... sent as bokeh sends it (the server drops the rest)",
        "_docsync.py",
        "        event = as_sent(event)\n",
        "",
        ("tests/integration/test_column_assignment.py::"
         "test_a_column_assignment_reaches_the_server_with_the_other_columns[item]",
         "tests/integration/test_column_assignment.py::"
         "test_a_column_assignment_reaches_the_server_with_the_other_columns[new_column]",
         "tests/integration/test_column_assignment.py::test_a_numpy_column_assignment_reaches_the_server_with_the_other_columns",
         "tests/integration/test_column_assignment.py::"
         "test_another_clients_column_assignment_reaches_us_with_the_other_columns")),
    Breakage(
        "server-column-assignment-applied-by-bokeh", "12: a server column assignment applied by bokeh's apply",
        "_docsync.py",
        "                if self.outbox.has_pending() or assigns_columns(message):\n",
        "                if self.outbox.has_pending():\n",
        ("tests/integration/test_column_assignment.py::"
         "test_a_server_column_assignment_keeps_our_other_columns[another_client]",)),
    Breakage(
        "server-column-assignment-replaces-data", "12: a server column assignment replaces the whole data here",
        "_column_assignment.py",
        "    event[\"data\"] = merged = {**current, **theirs}\n",
        "    merged = {**current, **theirs}\n",
        ("tests/integration/test_column_assignment.py::test_a_server_column_assignment_keeps_our_other_columns[us]",
         "tests/integration/test_column_assignment.py::"
         "test_a_server_column_assignment_keeps_our_other_columns[another_client]",
         "tests/unit/test_crossing.py::test_a_server_column_assignment_keeps_the_other_columns[item-nothing]",
         "tests/unit/test_crossing.py::"
         "test_a_server_column_assignment_keeps_the_other_columns[update-another_property]")),
    Breakage(
        "server-reaction-skipped-unverified", "12: a skipped server change (maybe a reaction to ours) not verified",
        "_crossing.py",
        "                if not reasons and not _leaves_ours(event, doc):\n",
        "                if False:\n",
        ("tests/integration/test_integrity.py::test_a_server_callback_changing_what_we_changed_ends_as_the_server[values0]",
         "tests/integration/test_column_assignment.py::test_an_app_reacting_to_our_changes_assigns_a_column_after_ours[True]",
         "tests/unit/test_crossing.py::test_a_server_callbacks_reaction_to_our_change_ends_as_the_server[reaction]")),
    Breakage(
        "skip-verified-even-when-equal", "12: a skipped server change setting what we have still resyncs",
        "_crossing.py",
        "    return type(current) is type(new) and bool(current == new)\n",
        "    return False\n",
        ("tests/unit/test_crossing.py::test_a_server_callbacks_reaction_to_our_change_ends_as_the_server"
         "[same_value_first]",)),
    Breakage(
        "inconsistent-column-assignment-applied", "12: a server assignment leaving unequal columns applied",
        "_column_assignment.py",
        "    return len(_lengths(merged)) <= 1 or len(_lengths(theirs)) > 1\n",
        "    return True\n",
        ("tests/unit/test_crossing.py::"
         "test_a_server_column_assignment_that_does_not_describe_the_source_is_left_to_the_resync",)),
    Breakage(
        "reappend-unverified", "12: a server data replacement crossing our streams is not verified",
        "_crossing.py",
        "                    if action is Action.REAPPEND and not reasons:\n",
        "                    if False:\n",
        ("tests/integration/test_integrity.py::"
         "test_a_server_callback_replacing_the_data_we_stream_to_ends_as_the_server[True]",)),
    # Issue 16: fewer, larger streams ---------------------------------------------------
    Breakage(
        "pending-recounted-per-server-patch", "16: each server patch counts every pending change again",
        "_queued.py",
        '    cached: Pending | None = getattr(item, "_bokehsync_touches", None)\n',
        "    cached: Pending | None = None\n",
        ("tests/unit/test_outbox.py::test_pending_counts_each_change_once_however_often_it_is_asked",)),
    Breakage(
        "coalesce-ignores-rollover", "16: streams with different rollovers merged into one",
        "_coalesce.py",
        "        return event.model is self.model and event.attr == self.attr and event.rollover == self.rollover \\\n",
        "        return event.model is self.model and event.attr == self.attr \\\n",
        ("tests/unit/test_coalesce.py::test_streams_that_differ_are_not_merged",)),
    Breakage(
        "coalesce-keeps-callers-rows", "16: a queued stream holds the caller's array, not a copy",
        "_coalesce.py",
        "    return np.array(rows, copy=True)\n",
        "    return rows\n",
        ("tests/unit/test_coalesce.py::test_the_callers_arrays_may_change_after_the_stream",)),
]


# Running ---------------------------------------------------------------------------

_IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "mutants", "__pycache__", ".hypothesis",
                                 ".pytest_cache", "build", "dist", "*.egg-info", ".nox", ".mypy_cache",
                                 ".ruff_cache", "html-cov")

_SPY = textwrap.dedent('''
    # Written by tests/breakages.py: log where each process finds bokehsync.
    import os as _os
    import sys as _sys

    _LOG = _os.environ.get("BOKEHSYNC_IMPORT_LOG")


    class _ImportSpy:
        def find_spec(self, name, path=None, target=None):
            if name != "bokehsync":
                return None
            for finder in _sys.meta_path:
                if finder is self or not hasattr(finder, "find_spec"):
                    continue
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    with open(_LOG, "a") as f:
                        f.write(f"{_os.getpid()} {spec.origin}\\n")
                    return spec
            return None


    if _LOG and not any(type(f).__name__ == "_ImportSpy" for f in _sys.meta_path):
        _sys.meta_path.insert(0, _ImportSpy())
''')

_PTH_NAME = "bokehsync_breakages_spy.pth"


def install_spy(hook_dir: str) -> str | None:
    ''' Install the import spy; returns the .pth file to remove afterwards, if one was written. '''
    with open(os.path.join(hook_dir, "bokehsync_breakages_spy.py"), "w") as f:
        f.write(_SPY)
    with open(os.path.join(hook_dir, "sitecustomize.py"), "w") as f:
        f.write("import bokehsync_breakages_spy  # noqa\n")
    import site
    for directory in site.getsitepackages():
        pth = os.path.join(directory, _PTH_NAME)
        try:
            with open(pth, "w") as f:
                f.write(f"import sys; sys.path.append({hook_dir!r}); import bokehsync_breakages_spy\n")
        except OSError:
            continue
        return pth
    return None


class StaleTable(Exception):
    ''' The table no longer fits the code or the tests. '''


def copy_project(dest: str) -> str:
    project = os.path.join(dest, "project")
    shutil.copytree(ROOT, project, ignore=_IGNORE, symlinks=True)
    return project


def apply(project: str, breakage: Breakage) -> None:
    ''' Make the breakage's edits in ``project`` (``ROOT`` itself is never written). '''
    for file, old, new in breakage.edits():
        path = os.path.join(project, "bokehsync", file)
        if not os.path.exists(path):
            raise StaleTable(f"{breakage.name}: bokehsync/{file} does not exist")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        found = text.count(old)
        if found != 1:
            raise StaleTable(f"{breakage.name}: the old text is found {found} times (not once) in "
                             f"bokehsync/{file}:\n{textwrap.indent(old, '    | ')}")
        if project == ROOT:
            continue  # only checking that the table fits the code
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(old, new))


def run_tests(project: str, hook_dir: str, node_ids: list[str], log: str, out_path: str) -> dict[str, str]:
    ''' Run ``node_ids`` in ``project``; their outcomes ("passed", "failed", "error", "skipped"). '''
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([project, hook_dir])
    env["BOKEHSYNC_IMPORT_LOG"] = log
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-rA", "-q",
           "--no-header", *node_ids]
    with open(out_path, "w") as out:
        subprocess.run(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       timeout=1800)
    with open(out_path, encoding="utf-8", errors="replace") as f:
        output = f.read()
    outcomes: dict[str, str] = {}
    for line in output.splitlines():
        m = re.match(r"^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) (\S+)", line)
        if m:
            outcomes.setdefault(m.group(2), m.group(1).lower())
    missing = [n for n in node_ids if n not in outcomes]
    if missing:
        raise StaleTable(f"these node ids did not run (renamed? deselected?): {missing}\n"
                         f"see {out_path}:\n{output[-3000:]}")
    return outcomes


def check_imports(project: str, log: str) -> int:
    ''' Every process imported bokehsync from the copy; returns how many processes did. '''
    try:
        with open(log) as f:
            lines = [line.split(" ", 1) for line in f.read().splitlines() if line]
    except FileNotFoundError:
        lines = []
    if not lines:
        raise StaleTable("no process logged importing bokehsync: the import check is not working")
    inside = os.path.join(project, "bokehsync") + os.sep
    outside = [(pid, origin) for pid, origin in lines if not origin.startswith(inside)]
    if outside:
        raise StaleTable(f"processes imported bokehsync from outside the copy {project}: {outside}")
    return len({pid for pid, _ in lines})


def run_one(breakage: Breakage | None, workdir: str, hook_dir: str,
        node_ids: list[str]) -> tuple[dict[str, str], int, float]:
    name = breakage.name if breakage else "baseline"
    scratch = tempfile.mkdtemp(prefix=f"{name}-", dir=workdir)
    project = copy_project(scratch)
    if breakage is not None:
        apply(project, breakage)
    log = os.path.join(scratch, "imports.log")
    start = time.monotonic()
    outcomes = run_tests(project, hook_dir, node_ids, log, os.path.join(scratch, "pytest.out"))
    processes = check_imports(project, log)
    return outcomes, processes, time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.breakages", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="breakages to run (default: all)")
    parser.add_argument("--list", action="store_true", help="print the table and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the unbroken copy")
    parser.add_argument("--keep", action="store_true", help="keep the scratch copies (and pytest output)")
    args = parser.parse_args(argv)

    by_name = {b.name: b for b in BREAKAGES}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        parser.error(f"unknown breakage(s): {unknown}; known: {sorted(by_name)}")
    chosen = [by_name[n] for n in args.names] if args.names else list(BREAKAGES)
    if args.list:
        for b in chosen:
            print(f"{b.name}\n    {b.item}\n    bokehsync/{b.file}" + "".join(f"\n    caught by {t}" for t in b.tests))
        return 0

    workdir = tempfile.mkdtemp(prefix="bokehsync-breakages-")
    hook_dir = os.path.join(workdir, "hook")
    os.makedirs(hook_dir)
    pth = install_spy(hook_dir)
    survived: list[str] = []
    try:
        # Every old snippet must be found before anything runs.
        for b in chosen:
            apply(ROOT, b)
        if not args.no_baseline:
            every = sorted({t for b in chosen for t in b.tests})
            outcomes, processes, took = run_one(None, workdir, hook_dir, every)
            failing = [t for t in every if outcomes[t] != "passed"]
            print(f"baseline: {len(every)} tests on the unbroken copy, {len(every) - len(failing)} passed "
                  f"({took:.0f} s; bokehsync imported from the copy by {processes} processes)", flush=True)
            if failing:
                print(f"the baseline must pass first; failing: {failing}", file=sys.stderr)
                return 2
        for b in chosen:
            outcomes, processes, took = run_one(b, workdir, hook_dir, list(b.tests))
            caught = all(outcomes[t] in ("failed", "error") for t in b.tests)
            if not caught:
                survived.append(b.name)
            print(f"{'CAUGHT  ' if caught else 'SURVIVED'} {b.name} ({took:.0f} s, {processes} processes "
                  f"imported the copy)", flush=True)
            for t in b.tests:
                print(f"           {outcomes[t]:7} {t}", flush=True)
    except StaleTable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        if pth is not None:
            os.unlink(pth)
        if args.keep:
            print(f"scratch copies kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(chosen) - len(survived)} caught, {len(survived)} survived"
          + (f": {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
