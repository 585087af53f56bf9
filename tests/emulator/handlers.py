"""Model handlers used by the emulator tests (loaded by name, as a user's would be)."""

from __future__ import annotations

from collections.abc import Mapping


def picky(body: bytes, request: Mapping[str, str | None]) -> tuple[bytes, str]:
    """Upper-cases its input; refuses inputs that start with ``fail``."""
    if body.startswith(b"fail"):
        raise RuntimeError("picky model refuses this input")
    return body.upper(), "text/plain"


def plain(body: bytes, request: Mapping[str, str | None]) -> bytes:
    """Returns the input unchanged, without a content type of its own."""
    return body
