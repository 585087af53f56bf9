"""Model handlers: the Python callable that stands in for the model container.

A handler is ``handler(body: bytes, request: Mapping[str, str | None]) -> bytes | tuple[bytes,
str]``. ``body`` is the input payload (from InputLocation or the inline Body); ``request`` has
the keys ``endpoint_name``, ``inference_id``, ``input_location`` (None for an inline Body),
``content_type``, ``accept`` and ``custom_attributes``. It returns the output payload, optionally
with its content type (default: the request's Accept, else ``application/octet-stream``). An
exception it raises becomes a failed invocation whose failure object holds
``"<ExceptionType>: <message>"``, as a model container's error response would.

Handlers are named ``"module:function"`` (``bulkinvoke.emulator.handlers:summarize`` is the
default) and are called from several worker threads at once.
"""

from __future__ import annotations

import codecs
import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from functools import lru_cache

Handler = Callable[[bytes, Mapping[str, str | None]], bytes | tuple[bytes, str]]
DEFAULT_HANDLER = "bulkinvoke.emulator.handlers:summarize"
_PREVIEW_CHARS = 200


def summarize(body: bytes, request: Mapping[str, str | None]) -> tuple[bytes, str]:
    """A small JSON summary of the input, enough to check that the right input was processed."""
    # Incremental, so a character cut in half by the slice is not taken for invalid UTF-8.
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        preview: str | None = decoder.decode(body[: _PREVIEW_CHARS * 4])[:_PREVIEW_CHARS]
    except UnicodeDecodeError:
        preview = None
    summary = {
        "inference_id": request.get("inference_id"),
        "input_location": request.get("input_location"),
        "content_type": request.get("content_type"),
        "custom_attributes": request.get("custom_attributes"),
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "text": preview,
    }
    return json.dumps(summary).encode(), "application/json"


@lru_cache(maxsize=64)
def load_handler(spec: str | None) -> Handler:
    """The callable named ``"module:function"``; ValueError if it cannot be imported."""
    module_name, _, attribute = (spec or DEFAULT_HANDLER).partition(":")
    try:
        handler: Handler = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load handler {spec!r}: {exc}") from exc
    if not callable(handler):
        raise ValueError(f"handler {spec!r} is not callable")
    return handler
