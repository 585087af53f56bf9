"""Deterministic inference IDs and output file names.

The ID of attempt ``a`` at an input is::

    "bi-" + base32(sha256("bulkinvoke/1" NUL namespace NUL endpoint NUL input_location NUL a))[:24]

lower-cased (27 characters, 120 bits). The same manifest and endpoint therefore give the same IDs
in any run directory and on any machine; ``--id-namespace`` (a model version, say) separates runs
that must not share IDs.

A row may carry its own ``inference_id``: attempt 1 uses it verbatim, and a later attempt ``a``
uses ``"<id>~<a>"`` when that fits the API's 64 characters, else a hash of both.

The request's ``Filename`` (at most 32 characters, one dot) is ``<id>.out`` when the ID is already
a valid file-name stem of at most 28 characters (every generated ID is), else ``bi-<hash of
id>.out``. Because the file name follows from the ID, so does the output location: after a crash
an attempt whose output already exists is recognised instead of being sent again.
"""

from __future__ import annotations

import base64
import hashlib
import re

from bulkinvoke.request_options import INFERENCE_ID_MAX

ID_PREFIX = "bi-"
ID_VERSION = "bulkinvoke/1"
OUTPUT_SUFFIX = ".out"
_HASH_CHARS = 24
_STEM = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,27}")


def _digest(*parts: str) -> str:
    joined = "\0".join(parts).encode("utf-8", "surrogatepass")
    encoded = base64.b32encode(hashlib.sha256(joined).digest()).decode("ascii")
    return ID_PREFIX + encoded[:_HASH_CHARS].lower()


def inference_id(
    namespace: str, endpoint: str, input_location: str, attempt: int = 1, own_id: str | None = None
) -> str:
    """The inference ID of ``attempt`` (1-based) at ``input_location``."""
    if attempt < 1:
        raise ValueError("attempts are numbered from 1")
    if own_id is not None:
        if attempt == 1:
            return own_id
        suffixed = f"{own_id}~{attempt}"
        return suffixed if len(suffixed) <= INFERENCE_ID_MAX else _digest(own_id, str(attempt))
    return _digest(ID_VERSION, namespace, endpoint, input_location, str(attempt))


def output_filename(inference_id: str) -> str:
    """The ``Filename`` sent with the call, so the output lands at a key known in advance."""
    stem = inference_id if _STEM.fullmatch(inference_id) else _digest(inference_id)
    return stem + OUTPUT_SUFFIX
