"""InvokeEndpointAsync's members and their constraints, read from botocore's service model data.

The emulator checks requests against this, never against the core's ``request_options`` (the
code it is there to test): a limit written wrong in the core is then refused by the emulator as
the service would refuse it. The model's patterns are Java regular expressions; the few Java
constructs they use are translated to Python's (``\\p{ASCII}``, ``\\p{Print}``, ``\\z``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

SERVICE = "sagemaker-runtime"
OPERATION = "InvokeEndpointAsync"

_JAVA_TO_PYTHON = (
    ("[\\p{Print}]", "[\\x20-\\x7e]"),
    ("\\p{Print}", "[\\x20-\\x7e]"),
    ("\\p{ASCII}", "[\\x00-\\x7f]"),
    ("\\z", "\\Z"),
)


def python_pattern(java: str) -> re.Pattern[str]:
    for old, new in _JAVA_TO_PYTHON:
        java = java.replace(old, new)
    return re.compile(java)


@dataclass(frozen=True)
class Member:
    """One input member: where it travels and what the model says it may hold."""

    name: str  # as in the model (EndpointName)
    location: str  # "uri", "header" or "" (the body)
    wire_name: str  # the header's or the URI label's name
    type_name: str  # "string", "integer" or "blob"
    minimum: int | None
    maximum: int | None
    pattern: str | None  # as the model gives it, for the messages
    sensitive: bool

    @property
    def reported_name(self) -> str:
        """The name the service uses in its validation messages (camelCase)."""
        return self.name[0].lower() + self.name[1:]

    def problem(self, value: str | int) -> str | None:
        """The service's text for the first constraint ``value`` breaks, or None."""
        if self.type_name == "integer":
            assert isinstance(value, int)
            if self.minimum is not None and value < self.minimum:
                return f"Member must have value greater than or equal to {self.minimum}"
            if self.maximum is not None and value > self.maximum:
                return f"Member must have value less than or equal to {self.maximum}"
            return None
        assert isinstance(value, str)
        if self.minimum is not None and len(value) < self.minimum:
            return f"Member must have length greater than or equal to {self.minimum}"
        if self.maximum is not None and len(value) > self.maximum:
            return f"Member must have length less than or equal to {self.maximum}"
        if self.pattern is not None and not python_pattern(self.pattern).fullmatch(value):
            return f"Member must satisfy regular expression pattern: {self.pattern}"
        return None


@functools.cache
def members() -> dict[str, Member]:
    """Every input member of InvokeEndpointAsync, by its model name."""
    import botocore.session

    model = botocore.session.get_session().get_service_model(SERVICE)
    shape = model.operation_model(OPERATION).input_shape
    if shape is None:
        raise RuntimeError(f"botocore's model of {OPERATION} has no input")
    found = {}
    for name, member in shape.members.items():
        metadata = member.metadata
        found[name] = Member(
            name=name,
            location=member.serialization.get("location", ""),
            wire_name=member.serialization.get("name", name),
            type_name=member.type_name,
            minimum=metadata.get("min"),
            maximum=metadata.get("max"),
            pattern=metadata.get("pattern"),
            sensitive=bool(metadata.get("sensitive")),
        )
    return found


def header_members() -> list[Member]:
    return [m for m in members().values() if m.location == "header"]


@functools.cache
def control_plane_shape(name: str) -> tuple[list[str], dict[str, int]]:
    """A shape of the ``sagemaker`` (control plane) model: its enum values and its limits."""
    import botocore.session

    shape = botocore.session.get_session().get_service_model("sagemaker").shape_for(name)
    limits = {k: v for k, v in shape.metadata.items() if k in ("min", "max")}
    return list(getattr(shape, "enum", []) or []), limits
