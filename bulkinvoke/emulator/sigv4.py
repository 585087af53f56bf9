"""Signature Version 4 checked as the service checks it, from the steps of the AWS documentation
("Create a canonical request", "Create a string to sign", "Calculate the signature"), with no
botocore code: the signer under test is botocore's (through bulkinvoke's transports), so the
check must not be.

A request the emulator cannot verify gets the service's 403: ``MissingAuthenticationToken`` with
no Authorization header, ``IncompleteSignature`` when a part is missing,
``UnrecognizedClient`` for an access key it did not hand out, ``InvalidSignature`` for a
signature that does not match or a date more than five minutes off.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "sagemaker"
MAX_SKEW_S = 300
_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})"
)
_SPACES = re.compile(r"\s+")


class SignatureError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode("utf-8"), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return key


def canonical_uri(raw_path: str) -> str:
    """The path as sent, each segment URI-encoded once more (every service but S3 signs the
    encoded path encoded again)."""
    return "/".join(quote(segment, safe="-_.~") for segment in raw_path.split("/")) or "/"


def canonical_query(raw_query: str) -> str:
    pairs = []
    for item in filter(None, raw_query.split("&")):
        name, _, value = item.partition("=")
        pairs.append((quote(name, safe="-_.~%"), quote(value, safe="-_.~%")))
    return "&".join(f"{n}={v}" for n, v in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed: list[str],
    payload_hash: str,
) -> str:
    lines = [method, canonical_uri(raw_path), canonical_query(raw_query)]
    lines += [f"{name}:{_SPACES.sub(' ', headers.get(name, '').strip())}" for name in signed]
    return "\n".join([*lines, "", ";".join(signed), payload_hash])


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Mapping[str, str],
    region: str,
    now: float | None = None,
) -> str:
    """Check the request's signature (``headers`` with lower-case names); return its access
    key, or raise SignatureError with the service's code and message."""
    authorization = headers.get("authorization")
    if authorization is None:
        raise SignatureError("MissingAuthenticationTokenException", "Missing Authentication Token")
    parts = ("Credential=", "SignedHeaders=", "Signature=")
    if not authorization.startswith(ALGORITHM + " ") or not all(p in authorization for p in parts):
        raise SignatureError(
            "IncompleteSignatureException",
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' "
            f"parameters ({ALGORITHM}). Authorization={authorization}",
        )
    amz_date = headers.get("x-amz-date")
    if amz_date is None:
        raise SignatureError(
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        )
    match = _AUTHORIZATION.fullmatch(authorization.strip())
    if match is None:
        raise SignatureError(
            "IncompleteSignatureException",
            "Credential must have the form KEY/YYYYMMDD/REGION/SERVICE/aws4_request, and the "
            f"signature 64 hex digits. Authorization={authorization}",
        )
    key, date, scope_region, service, signed_text, signature = match.groups()
    secret = secrets.get(key)
    if secret is None:
        raise SignatureError(
            "UnrecognizedClientException", "The security token included in the request is invalid."
        )
    if service != SERVICE or scope_region != region or not amz_date.startswith(date):
        raise SignatureError(
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service ({region}/{SERVICE}, "
            f"{amz_date[:8]}), not '{scope_region}/{service}/{date}'.",
        )
    _check_time(amz_date, time.time() if now is None else now)
    signed = signed_text.split(";")
    if "host" not in signed:
        raise SignatureError(
            "InvalidSignatureException", "'Host' or ':authority' must be a 'SignedHeader'."
        )
    payload_hash = hashlib.sha256(body).hexdigest()
    if headers.get("x-amz-content-sha256", payload_hash) != payload_hash:
        raise SignatureError(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    # The server holds header values as latin-1 (every byte as it came); the signer hashed the
    # bytes it sent, UTF-8 for text: the canonical request is made of those bytes again.
    as_sent = {name: _as_sent(value) for name, value in headers.items()}
    request = canonical_request(method, raw_path, raw_query, as_sent, signed, payload_hash)
    scope = f"{date}/{scope_region}/{service}/aws4_request"
    digest = hashlib.sha256(request.encode("utf-8", "surrogateescape")).hexdigest()
    to_sign = "\n".join([ALGORITHM, amz_date, scope, digest])
    key_bytes = signing_key(secret, date, scope_region, service)
    expected = hmac.new(key_bytes, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        raise SignatureError(
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS Secret Access Key and signing method. Consult the service "
            "documentation for details.",
        )
    return key


def _as_sent(value: str) -> str:
    try:
        return value.encode("latin-1").decode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value  # not from the wire


def _check_time(amz_date: str, now: float) -> None:
    try:
        signed_at = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", f"Date must be in ISO-8601 'basic format': {amz_date}"
        ) from None
    if abs(now - signed_at) > MAX_SKEW_S:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        raise SignatureError(
            "InvalidSignatureException",
            f"Signature expired: {amz_date} is now earlier than {stamp} - 5 min."
            if signed_at < now
            else f"Signature not yet current: {amz_date} is still later than {stamp} + 5 min.",
        )
