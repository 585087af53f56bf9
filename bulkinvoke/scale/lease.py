"""A lease on an S3 prefix, so that one live process at a time mirrors a run's ledger there.

The lease is the object ``<prefix>_lease.json``: the holder's random owner ID, host, PID and run
directory, and how long it lasts. It is taken with S3's conditional writes: created with
``If-None-Match: *`` (only if no lease exists), and renewed, taken over after expiry, or given
up with ``If-Match: <the ETag read>``, so of two processes racing for it exactly one wins. The
holder renews it every third of its duration; a process that dies stops renewing, and once the
lease has expired the next process may take it.

Expiry is judged by S3's clock alone (the object's Last-Modified against the response's Date),
so machines whose clocks disagree still agree on whether a lease is live.

Stores without conditional writes ignore those headers; there the lease is best effort: the
holder reads it back before every upload (``verify``) and stops once another owner is in it.

A holder that stalls (a paused VM, a sleeping laptop) must not write after its lease may have
run out: before each write to the prefix ``ensure_held`` checks, by this process's monotonic
clock from the moment it sent its last successful lease write, that a fifth of the lease is
still left, and renews it first otherwise (which fails if another process took it meanwhile).
What no lease can rule out without a fence on every write: a write that leaves before that check
and lands after the lease ran out (a stall of more than a fifth of the lease in between). Event
files are uploaded only if absent, so such a late write cannot replace another writer's file;
the next holder's own upload of that name then fails and it stops, rather than diverge.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import LeaseHeld, LeaseLost, error_code

LEASE_NAME = "_lease.json"
DEFAULT_LEASE_SECONDS = 60.0
# A lost race (412), a concurrent conditional write (409), or a lease deleted meanwhile (404).
_CONFLICTS = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404"})
_ACQUIRE_ATTEMPTS = 3
# Writes stop while this fraction of the lease is still left by the local clock: room for the
# write itself, and for S3's clock starting the lease a little after the request left.
_SPARE_FRACTION = 0.2
# S3's LastModified and Date are whole seconds: the lease left, reckoned from them, can be up to
# a second short, so a lease counts as live for that second more (never taken over early).
_SERVER_CLOCK_RESOLUTION = 1.0


def _conflict(error: ClientError) -> bool:
    return error_code(error) in _CONFLICTS


class Lease:
    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        key: str,
        *,
        seconds: float,
        run_dir: Path,
        owner_args: dict[str, str] | None = None,
    ) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._key = key
        self.seconds = seconds
        self.owner = uuid.uuid4().hex
        self._run_dir = str(run_dir)
        self._owner_args = owner_args or {}
        self._etag: str | None = None
        self._valid_until = float("-inf")  # monotonic
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost: str | None = None

    @property
    def uri(self) -> str:
        return f"s3://{self._bucket}/{self._key}"

    def acquire(self) -> None:
        """Take the lease, or raise ``LeaseHeld`` naming the live holder."""
        for _ in range(_ACQUIRE_ATTEMPTS):
            # Reading first also refuses a live holder on a store that ignores the conditions.
            current = self._read()
            if current is None:
                conditions = {"IfNoneMatch": "*"}
            else:
                holder, etag, remaining = current
                if remaining > 0 and holder.get("owner") != self.owner:
                    raise LeaseHeld(self._held_message(holder, remaining))
                conditions = {"IfMatch": etag}
            try:
                self._put(self.seconds, **conditions)
            except ClientError as error:
                if not _conflict(error):
                    raise
                continue  # another process wrote it first: look again at who holds it
            self.verify()
            return
        raise LeaseHeld(f"{self.uri} keeps changing hands: another process is taking it")

    def renew(self) -> None:
        with self._guard:
            if self.lost is not None:
                raise LeaseLost(self.lost)
            try:
                self._put(self.seconds, IfMatch=self._etag or "")
                return
            except ClientError as error:
                if not _conflict(error):
                    raise
            # A renewal whose answer was lost still changed the ETag: still ours if the lease
            # names this process.
            current = self._read()
            if current is not None and current[0].get("owner") == self.owner:
                try:
                    self._put(self.seconds, IfMatch=current[1])
                    return
                except ClientError as error:
                    if not _conflict(error):
                        raise
            self.lost = (
                f"the lease {self.uri} was taken by another process after it expired "
                "(this one could not renew it in time); this process stopped mirroring"
            )
            raise LeaseLost(self.lost)

    def ensure_held(self) -> None:
        """Before each write to the prefix: raise ``LeaseLost`` unless the lease is surely
        still this process's, renewing it first when it is close to running out."""
        if self.lost is not None:
            raise LeaseLost(self.lost)
        if time.monotonic() < self._valid_until - self.seconds * _SPARE_FRACTION:
            return
        self.renew()

    def verify(self) -> None:
        """Check that this process still holds the lease, by the clock and by reading it back
        (what protects a store that ignores conditional writes)."""
        self.ensure_held()
        current = self._read()
        holder = current[0] if current else {}
        if holder.get("owner") != self.owner:
            with self._guard:
                self.lost = self.lost or (
                    f"the lease {self.uri} now belongs to another process "
                    f"({holder.get('host', 'unknown host')}, pid {holder.get('pid', '?')}); "
                    "this process stopped mirroring"
                )
            raise LeaseLost(self.lost)

    def keep_alive(self, warn: Callable[[str], None]) -> None:
        """Renew every third of the lease's duration, on a thread, until ``release``."""
        self._thread = threading.Thread(
            target=self._renew_loop, args=(warn,), name="bulkinvoke-lease", daemon=True
        )
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and end the lease at once (best effort: else it expires by itself)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._guard:
            if self.lost is not None or self._etag is None:
                return
            # Else the lease simply runs out.
            with contextlib.suppress(ClientError, BotoCoreError):
                self._put(0.0, IfMatch=self._etag)
            self._etag = None

    def _renew_loop(self, warn: Callable[[str], None]) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                self.renew()
            except LeaseLost as error:
                warn(str(error))
                return
            except (ClientError, BotoCoreError) as error:
                # Two more tries before the lease runs out; an expired lease that nobody took
                # is still renewed by its ETag.
                warn(f"renewing the lease {self.uri}: {error}")

    def _put(self, seconds: float, **conditions: str) -> None:
        body = {
            "owner": self.owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "run_dir": self._run_dir,
            "seconds": seconds,
            "written_at": time.time(),
        }
        sent = time.monotonic()
        response = self._s3.put_object(
            Bucket=self._bucket,
            Key=self._key,
            Body=json.dumps(body).encode(),
            ContentType="application/json",
            **conditions,
            **self._owner_args,
        )
        self._etag = response["ETag"]
        self._valid_until = sent + seconds

    def _read(self) -> tuple[dict[str, Any], str, float] | None:
        """(holder, ETag, seconds left by S3's clock), or None if there is no lease."""
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=self._key, **self._owner_args)
        except ClientError as error:
            if _conflict(error):
                return None
            raise
        try:
            holder = json.loads(response["Body"].read())
            seconds = float(holder.get("seconds", 0))
        except (ValueError, TypeError, AttributeError):
            holder, seconds = {}, 0.0  # not a lease this version wrote: treat it as expired
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        now = _server_time(headers.get("date"))
        modified: datetime = response["LastModified"]
        if seconds > 0:  # a released lease (0 s) is free at once
            seconds += _SERVER_CLOCK_RESOLUTION
        return holder, response["ETag"], modified.timestamp() + seconds - now

    def _held_message(self, holder: dict[str, Any], remaining: float) -> str:
        return (
            f"{self.uri} is held by another live bulkinvoke process "
            f"({holder.get('host', 'unknown host')}, pid {holder.get('pid', '?')}, run directory "
            f"{holder.get('run_dir', '?')}) for {remaining:.0f} s more, unless it renews it: "
            "two writers would overwrite each other's ledger. If that process is gone, run this "
            "again once its lease has expired"
        )


def _server_time(date_header: str | None) -> float:
    if date_header:
        try:
            return parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()
