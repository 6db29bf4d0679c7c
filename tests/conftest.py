"""Fixtures shared by every test package."""
import socket

import pytest


@pytest.fixture
def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (a gloo group's or
    torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]
