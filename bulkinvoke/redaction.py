"""What error text may keep before it is stored or shown: no custom attributes (sensitive by
contract; a model's failure text or a service message may echo them) and no credentials."""

from __future__ import annotations

import re

CUSTOM_ATTRIBUTES_PLACEHOLDER = "<custom-attributes>"
# (pattern, replacement): RE2 (the report applies them to whole columns with pyarrow) and
# Python's re read them alike.
SECRET_PATTERNS = (
    (r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b", "<secret>"),
    (
        r"(?i)((?:secret|token|password|passwd|signature|credential|authorization|api[_-]?key)"
        r"[\w-]*[\"']?\s*[:=]\s*)[\"']?[^\s\"',;&]+",
        r"\1<secret>",
    ),
)
_COMPILED = tuple((re.compile(pattern), replacement) for pattern, replacement in SECRET_PATTERNS)


def redact(text: str, custom_attributes: str | None) -> str:
    """``text`` without ``custom_attributes`` and without anything that looks like a secret."""
    if custom_attributes:
        text = text.replace(custom_attributes, CUSTOM_ATTRIBUTES_PLACEHOLDER)
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text
