"""`make demo` and a port in use (issue #14 item 6): it names the port and says what to
do, before starting anything, instead of failing somewhere in the middle."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest


def _devservices():
    path = Path(__file__).resolve().parents[2] / "scripts" / "devservices.py"
    spec = importlib.util.spec_from_file_location("devservices_port_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("value", ["taken", "http"])
def test_a_port_in_use_or_not_a_port_stops_the_demo_with_its_name(monkeypatch, capsys, value):
    devservices = _devservices()
    started = []
    monkeypatch.setattr(devservices, "Services", lambda **kw: started.append(kw))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1]) if value == "taken" else value
        monkeypatch.setenv("PORT", port)
        assert devservices.demo() == 1
    message = capsys.readouterr().err
    assert f"port {port} is in use" in message and "make demo" in message
    assert started == []  # nothing was started
