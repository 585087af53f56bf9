"""Error text is stored and shown without custom attributes or credentials."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.hooks import HierarchicalEmitter

from bulkinvoke.calls.invoker import Call, Invoker
from bulkinvoke.calls.limiter import RateLimiter
from bulkinvoke.calls.retry import RetryPolicy
from bulkinvoke.redaction import redact
from bulkinvoke.request_options import RequestOptions
from bulkinvoke.states import State

ATTRIBUTES = "tenant=acme;session=hush-7f3e"


def test_custom_attributes_and_credentials_are_taken_out() -> None:
    text = (
        f"Value '{ATTRIBUTES}' rejected; key AKIAABCDEFGHIJKLMNOP, "
        "X-Amz-Signature=0f1e2d3c4b5a and password: 'hunter2'"
    )
    cleaned = redact(text, ATTRIBUTES)
    for secret in (ATTRIBUTES, "hush", "AKIAABCDEFGHIJKLMNOP", "0f1e2d3c4b5a", "hunter2"):
        assert secret not in cleaned
    assert cleaned.startswith("Value '<custom-attributes>' rejected; key <secret>,")


def test_text_without_secrets_is_kept_as_it_is() -> None:
    text = "ModelError: CUDA out of memory (tried 2.1 GiB)"
    assert redact(text, None) == redact(text, ATTRIBUTES) == text


class _Refusing:
    """A runtime client whose every call is refused with a message quoting the request."""

    def __init__(self, code: str, status: int) -> None:
        self.meta = SimpleNamespace(events=HierarchicalEmitter())
        self._error = {"Code": code, "Message": f"customAttributes '{ATTRIBUTES}' is not allowed"}
        self._status = status

    def invoke_endpoint_async(self, **_: Any) -> dict[str, Any]:
        response = {"Error": self._error, "ResponseMetadata": {"HTTPStatusCode": self._status}}
        raise ClientError(response, "InvokeEndpointAsync")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "state"),
    [("ValidationError", 400, State.REJECTED), ("AccessDeniedException", 403, State.SUBMITTING)],
)
def test_an_answer_quoting_the_attributes_is_stored_and_logged_without_them(
    code: str, status: int, state: State
) -> None:
    invoker = Invoker(
        _Refusing(code, status), "demo", limiter=RateLimiter(None), policy=RetryPolicy()
    )
    call = Call(1, 1, "bi-x", "s3://b/k", RequestOptions(custom_attributes=ATTRIBUTES))
    result = invoker.invoke(call)
    assert result.state is state
    said = result.error if result.stop is None else result.stop.describe()
    assert said is not None and "<custom-attributes>" in said and "hush" not in said
