"""A model handler for the emulator that echoes its request in its failures, as real model
containers do in their error messages: what reaches a failure object must still not reach
bulkinvoke's ledger, logs or reports when it is a secret of the request."""

from __future__ import annotations

import zlib
from collections.abc import Mapping


def fail_every_third(body: bytes, request: Mapping[str, str | None]) -> bytes:
    if zlib.crc32(body) % 3 == 0:
        raise ValueError(
            f"cannot handle {request.get('input_location')} with custom attributes "
            f"{request.get('custom_attributes')} ({request.get('content_type')})"
        )
    return b'{"ok": true}'
