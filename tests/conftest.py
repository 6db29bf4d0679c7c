"""Fixtures shared by every test package."""
import importlib.util
import socket
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (a gloo group's or
    torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture
def load_tool() -> Callable[[str], ModuleType]:
    """``load_tool('tools/train.py')``: a command-line tool of the repo as a
    fresh module, to call its ``main(argv)`` in-process."""

    def load(path: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(
            'mmltm_tool_' + Path(path).stem, REPO / path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
