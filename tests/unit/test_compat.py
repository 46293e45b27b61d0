''' The bokeh version check and the shims of bokehsync._compat. '''
from __future__ import annotations

import bokeh
import pytest
from bokeh.core.serialization import Buffer

from bokehsync import _compat
from bokehsync._wire import PROTOCOL
from tests.support import run_python


@pytest.mark.parametrize("version", ["3.4.0", "3.4.3", "3.8.2", "3.9.2", "3.10.0.dev1", "3.11.0rc2"])
def test_supported_bokeh_versions_pass(version):
    ''' Every bokeh 3.x from 3.4 on passes the check. '''
    assert _compat.check_bokeh_version(version)[:2] >= (3, 4)


@pytest.mark.parametrize("version", ["3.3.4", "3.0.0", "2.4.3", "4.0.0", "4.0.0.dev1", "garbage"])
def test_unsupported_bokeh_versions_raise_import_error(version):
    ''' Any other bokeh raises ImportError naming the installed version and the supported range. '''
    with pytest.raises(ImportError, match=rf"bokehsync requires bokeh >= 3\.4, < 4, but bokeh {version} is installed"):
        _compat.check_bokeh_version(version)


@pytest.mark.parametrize("version", ["3.3.4", "4.0.0"])
def test_import_bokehsync_with_an_unsupported_bokeh_raises_import_error(version):
    ''' ``import bokehsync`` itself raises ImportError, naming the versions, when the installed bokeh
    is outside the supported range (in a fresh interpreter whose bokeh claims that version). '''
    done = run_python(f"import bokeh; bokeh.__version__ = {version!r}\n"
                      "try:\n    import bokehsync\nexcept ImportError as e:\n    print('ImportError:', e)\n"
                      "else:\n    print('imported')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ImportError: bokehsync requires bokeh >= 3.4, < 4, but bokeh {version}")


def test_installed_bokeh_is_the_one_checked():
    ''' BOKEH_VERSION is the installed bokeh's. '''
    assert ".".join(map(str, _compat.BOKEH_VERSION)) in bokeh.__version__


def test_add_buffers_appends_in_order_and_counts():
    ''' add_buffers() appends each buffer and sets num_buffers, on the installed bokeh. '''
    message = PROTOCOL.create("SERVER-INFO-REQ")
    buffers = [Buffer(f"b{i}", bytes([i])) for i in range(3)]
    _compat.add_buffers(message, buffers)
    assert message.header["num_buffers"] == 3
    assert [b.id for b in message.buffers] == ["b0", "b1", "b2"]


def test_add_buffers_without_add_buffers_method():
    ''' On a bokeh < 3.9 message (add_buffer only), add_buffers() adds them one by one. '''
    class OldMessage:
        def __init__(self) -> None:
            self.added: list[Buffer] = []

        def add_buffer(self, buffer: Buffer) -> None:
            self.added.append(buffer)

    message = OldMessage()
    buffers = [Buffer("x", b"1"), Buffer("y", b"2")]
    _compat.add_buffers(message, buffers)  # type: ignore[arg-type]
    assert message.added == buffers
