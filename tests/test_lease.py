"""The lease's reading of S3's clock, which speaks in whole seconds (no server needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from bulkinvoke.errors import LeaseHeld
from bulkinvoke.scale.lease import Lease

WRITTEN = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)  # LastModified: .9 s cut off


class OneLeaseS3:
    """Answers for one lease object as S3 does: LastModified and Date in whole seconds."""

    def __init__(self, seconds: float, now: datetime) -> None:
        self.body = {"owner": "other", "host": "h", "pid": 1, "run_dir": "/r", "seconds": seconds}
        self.now = now
        self.puts: list[dict[str, Any]] = []

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {
            "Body": _Body(json.dumps(self.body).encode()),
            "ETag": '"held"',
            "LastModified": WRITTEN,
            "ResponseMetadata": {"HTTPHeaders": {"date": format_datetime(self.now, usegmt=True)}},
        }

    def put_object(self, **request: Any) -> dict[str, Any]:
        self.puts.append(request)
        self.body = json.loads(request["Body"])
        return {"ETag": '"taken"'}


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read(self) -> bytes:
        return self._data


def _lease(s3: OneLeaseS3, tmp_path: Path) -> Lease:
    return Lease(s3, "b", "k", seconds=30, run_dir=tmp_path)


def test_a_lease_the_clocks_round_to_expired_is_still_held(tmp_path: Path) -> None:
    # Written at 12:00:00.9 for 1 s, read at 12:00:01.0: both clocks say a whole second passed.
    s3 = OneLeaseS3(seconds=1, now=WRITTEN + timedelta(seconds=1))
    with pytest.raises(LeaseHeld, match="held by another live bulkinvoke process"):
        _lease(s3, tmp_path).acquire()
    assert s3.puts == []


def test_a_lease_is_free_once_even_the_rounded_clocks_agree_it_ran_out(tmp_path: Path) -> None:
    s3 = OneLeaseS3(seconds=1, now=WRITTEN + timedelta(seconds=2))
    _lease(s3, tmp_path).acquire()
    assert [put["IfMatch"] for put in s3.puts] == ['"held"']


def test_a_released_lease_is_free_within_the_same_second(tmp_path: Path) -> None:
    s3 = OneLeaseS3(seconds=0, now=WRITTEN)
    _lease(s3, tmp_path).acquire()
    assert len(s3.puts) == 1
