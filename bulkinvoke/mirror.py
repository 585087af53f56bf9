"""A copy of a run's ledger under an S3 prefix (``--ledger-uri``), kept up to date as it runs.

The prefix holds the run directory's layout, plain Parquet that Athena, DuckDB or Spark read
where the data lives::

    <prefix>run.json  <prefix>plan.parquet  <prefix>events/{b,c}-<seq>.parquet  <prefix>_lease.json

The local ledger stays the truth while a run goes on. A background thread uploads what changed
soon after each compaction (it looks for a new ``c-`` file every second) and every third of the
lease's duration, so a machine that dies loses only the events of the last few seconds: on a
new machine those rows are settled from S3 or sent again with the same inference IDs. The upload
at the end of a run is synchronous. The plan and run.json go first, then the newest ``c-`` file,
then the batches after it in order, so the prefix always reads (by the ledger's reader rule) as
the run at some instant; files the rule no longer needs are deleted afterwards. One writer at a
time: see ``lease``.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.lease import DEFAULT_LEASE_SECONDS, LEASE_NAME, Lease, LeaseLost
from bulkinvoke.ledger_errors import LedgerError
from bulkinvoke.ledger_io import CONFIG_NAME, EVENTS_DIR, PLAN_NAME, list_event_files, read_config
from bulkinvoke.mirror_files import (
    EVENT_NAME,
    MirrorError,
    download_run,
    last_seq,
    list_prefix,
)
from bulkinvoke.s3uri import parse_s3_uri

if TYPE_CHECKING:
    from bulkinvoke.shards import Shard

# How often the background thread looks for a new compaction.
POLL_SECONDS = 1.0
_SYNC_ATTEMPTS = 5


@dataclass(frozen=True)
class MirrorSettings:
    uri: str
    lease_seconds: float = DEFAULT_LEASE_SECONDS

    def __post_init__(self) -> None:
        if not self.uri.startswith("s3://") or not self.uri[5:].split("/", 1)[0]:
            raise MirrorError(f"--ledger-uri takes s3://bucket/prefix/, not {self.uri!r}")
        if not self.uri.endswith("/"):
            object.__setattr__(self, "uri", self.uri + "/")

    def for_shard(self, shard: Shard | None) -> MirrorSettings:
        """Each shard mirrors to its own ``shard-K-of-N/`` under the prefix given."""
        return MirrorSettings(self.uri + f"{shard.label}/", self.lease_seconds) if shard else self

    def to_config(self) -> dict[str, Any]:
        return {"uri": self.uri, "lease_seconds": self.lease_seconds}

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> MirrorSettings | None:
        return cls(config["uri"], float(config["lease_seconds"])) if config else None


def saved_settings(run_dir: Path) -> MirrorSettings | None:
    """The mirror recorded in the run's run.json, if the run is here and has one."""
    path = run_dir / CONFIG_NAME
    return MirrorSettings.from_config(read_config(path).get("mirror")) if path.is_file() else None


class LedgerMirror:
    def __init__(
        self,
        s3: Any,
        settings: MirrorSettings,
        run_dir: Path,
        subscribers: Subscribers,
        owner_args: dict[str, str] | None = None,
    ) -> None:
        self.uri = settings.uri
        self._s3 = s3
        self._target = parse_s3_uri(settings.uri)
        self._run_dir = Path(run_dir)
        self._subscribers = subscribers
        self._owner_args = owner_args or {}
        self._lease = Lease(
            s3,
            self._target.bucket,
            self._target.key + LEASE_NAME,
            seconds=settings.lease_seconds,
            run_dir=self._run_dir,
            owner_args=self._owner_args,
        )
        # Key -> MD5 of what the prefix holds, so that only what changed is uploaded. Event
        # files and the plan never change once written, so their MD5 is computed once.
        self._remote: dict[str, str] = {}
        self._local_md5: dict[str, str] = {}
        self._sync_guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        """Take the lease; then download the run if it is only in S3, or refuse if the copy in
        S3 is ahead of the local one (another machine went on with the run)."""
        self._lease.acquire()
        try:
            self._remote = {
                name: etag
                for name, etag in list_prefix(self._s3, self.uri, self._owner_args).items()
                if name != LEASE_NAME
            }
            if (self._run_dir / CONFIG_NAME).is_file():
                self._check_not_behind()
            elif CONFIG_NAME in self._remote:
                copied = download_run(self._s3, self.uri, self._run_dir, self._owner_args)
                self._remote.update(copied)
                self._local_md5.update(copied)
                self._notice(NoticeLevel.INFO, f"continuing the run mirrored at {self.uri}")
        except BaseException:
            self._lease.release()
            raise
        self._lease.keep_alive(lambda message: self._notice(NoticeLevel.WARNING, message))

    def release(self) -> None:
        self._lease.release()

    @contextmanager
    def running(self) -> Iterator[None]:
        """Mirror on a background thread while the block runs; if it fails, upload what there is
        (best effort) before the error goes on."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="bulkinvoke-mirror", daemon=True)
        self._thread.start()
        try:
            yield
        except BaseException:
            self._join()
            # The block's error is the one to report, not the mirror's.
            with suppress(LedgerError, ClientError, BotoCoreError, OSError):
                self.sync()
            raise
        self._join()

    def final_sync(self) -> str | None:
        """Upload what is left, synchronously; why it could not be, or None."""
        try:
            self._lease.renew()
            self.sync()
        except (LedgerError, ClientError, BotoCoreError, OSError) as error:
            return f"the ledger could not be mirrored to {self.uri}: {error}"
        return None

    def sync(self) -> None:
        with self._sync_guard:
            self._lease.verify()
            for _ in range(_SYNC_ATTEMPTS):
                try:
                    self._sync_once()
                    return
                except FileNotFoundError:
                    continue  # a compaction replaced files while they were uploaded
            raise MirrorError(f"the ledger in {self._run_dir} kept changing while it was mirrored")

    def _sync_once(self) -> None:
        files = list_event_files(self._run_dir / EVENTS_DIR)
        events = ([files.compaction] if files.compaction else []) + files.batches
        wanted = [f"{EVENTS_DIR}/{path.name}" for _, path in events]
        # The plan, then run.json: whoever downloads the prefix finds a run once both are there,
        # and events only after them.
        self._upload(PLAN_NAME, immutable=True)
        self._upload(CONFIG_NAME, immutable=False)
        for name in wanted:
            self._upload(name, immutable=True)
        keep = set(wanted)
        stale = [n for n in self._remote if EVENT_NAME.fullmatch(n) and n not in keep]
        for start in range(0, len(stale), 1000):
            chunk = stale[start : start + 1000]
            self._s3.delete_objects(
                Bucket=self._target.bucket,
                Delete={"Objects": [{"Key": self._target.key + n} for n in chunk], "Quiet": True},
                **self._owner_args,
            )
            for name in chunk:
                del self._remote[name]

    def _upload(self, name: str, *, immutable: bool) -> None:
        path = self._run_dir / name
        digest = self._local_md5.get(name) if immutable else None
        data = None
        if digest is None:
            data = path.read_bytes()
            digest = hashlib.md5(data, usedforsecurity=False).hexdigest()
            if immutable:
                self._local_md5[name] = digest
        if self._remote.get(name) == digest:
            return
        self._s3.put_object(
            Bucket=self._target.bucket,
            Key=self._target.key + name,
            Body=data if data is not None else path.read_bytes(),
            **self._owner_args,
        )
        self._remote[name] = digest

    def _check_not_behind(self) -> None:
        local = list_event_files(self._run_dir / EVENTS_DIR).last_seq
        remote = last_seq(self._remote)
        if remote > local:
            raise MirrorError(
                f"{self.uri} is ahead of {self._run_dir} (events up to {remote}, here {local}): "
                "another machine went on with this run. Resume into an empty directory to "
                "continue from the mirror, or mirror this run elsewhere"
            )

    def _loop(self) -> None:
        seen: str | None = None
        last = float("-inf")
        failing = False
        interval = self._lease.seconds / 3
        while True:
            newest = _newest_compaction(self._run_dir / EVENTS_DIR)
            if newest != seen or time.monotonic() - last >= interval:
                last = time.monotonic()
                try:
                    self.sync()
                except LeaseLost as error:
                    self._notice(NoticeLevel.ERROR, str(error))
                    return
                except (LedgerError, ClientError, BotoCoreError, OSError) as error:
                    if not failing:
                        self._notice(NoticeLevel.WARNING, f"mirroring to {self.uri}: {error}")
                    failing = True
                else:
                    seen, failing = newest, False
            if self._stop.wait(POLL_SECONDS):
                return

    def _join(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _notice(self, level: NoticeLevel, message: str) -> None:
        self._subscribers.notice(level, message, ledger_uri=self.uri)


def _newest_compaction(events_dir: Path) -> str | None:
    try:
        with os.scandir(events_dir) as entries:
            names = [e.name for e in entries if e.name.startswith("c-")]
    except FileNotFoundError:
        return None
    return max(names, default=None)


@contextmanager
def open_mirror(
    run_dir: Path,
    settings: MirrorSettings | None,
    s3: Any,
    subscribers: Subscribers,
    owner_args: dict[str, str] | None = None,
) -> Iterator[LedgerMirror | None]:
    """The mirror of ``run_dir`` (None without ``settings``), its lease held until the end."""
    if settings is None:
        yield None
        return
    mirror = LedgerMirror(s3, settings, run_dir, subscribers, owner_args)
    try:
        mirror.acquire()
    except (ClientError, BotoCoreError) as error:
        raise MirrorError(f"cannot use {settings.uri}: {error}") from error
    try:
        yield mirror
    finally:
        mirror.release()
