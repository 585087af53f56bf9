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
time: see ``lease``. Event files and the plan are uploaded only if absent (``If-None-Match``),
so a writer that lost the lease cannot replace another's files with its own.

The run directory keeps ``mirror.json``: the prefix's files as this directory last left them.
A local run is mirrored again only if the prefix holds the same run (plan and manifest) and
nothing but what this directory wrote or knows: a prefix another machine went on with is refused
rather than overwritten.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.errors import LeaseLost, LedgerError, MirrorError, error_code
from bulkinvoke.events import NoticeLevel, Subscribers
from bulkinvoke.ledger.files import (
    CONFIG_NAME,
    EVENTS_DIR,
    PLAN_COMPANIONS,
    PLAN_NAME,
    list_event_files,
    read_config,
)
from bulkinvoke.ledger.identity import run_identity
from bulkinvoke.s3uri import list_prefix, parse_s3_uri
from bulkinvoke.scale.lease import LEASE_NAME, Lease
from bulkinvoke.scale.mirror_files import (
    EVENT_NAME,
    download_run,
    last_seq,
    md5_hex,
    needed_events,
)
from bulkinvoke.scale.mirror_settings import MirrorSettings, MirrorState

if TYPE_CHECKING:
    pass

# How often the background thread looks for a new compaction.
POLL_SECONDS = 1.0
_SYNC_ATTEMPTS = 5


class LedgerMirror:
    def __init__(
        self,
        s3: S3Client,
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
        # Key -> ETag of each object under the prefix, as S3 reports it. An ETag is the MD5 of
        # the content only for some uploads (not with SSE-KMS, nor on every S3-compatible
        # store), so content is compared by MD5 (``_synced``), and ETags only with ETags.
        self._remote: dict[str, str] = {}
        # Key -> MD5 of the content this process knows the prefix holds: only what changed is
        # uploaded. Event files and the plan never change once written.
        self._synced: dict[str, str] = {}
        self._local_md5: dict[str, str] = {}
        self._sync_guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self, check_run: Callable[[dict[str, Any]], None] | None = None) -> None:
        """Take the lease; then download the run if it is only in S3 (once ``check_run`` has
        accepted its run.json), or refuse if the prefix holds another run or went on without
        the local one."""
        self._lease.acquire()
        try:
            self._remote = {
                name: etag
                for name, etag in list_prefix(self._s3, self.uri, self._owner_args).items()
                if name != LEASE_NAME
            }
            if (self._run_dir / CONFIG_NAME).is_file():
                state = MirrorState.load(self._run_dir, self.uri)
                self._check_same_run(read_config(self._run_dir / CONFIG_NAME), state)
                self._check_not_behind(state)
            elif CONFIG_NAME in self._remote:
                if check_run is not None:
                    check_run(self._remote_config())
                copied = download_run(self._s3, self.uri, self._run_dir, self._owner_args)
                self._synced.update(copied)
                self._local_md5.update(copied)
                self._save_state()
                self._notice(NoticeLevel.INFO, f"continuing the run mirrored at {self.uri}")
        except BaseException:
            self._lease.release()
            raise
        self._lease.keep_alive(lambda message: self._notice(NoticeLevel.WARNING, message))

    def release(self) -> None:
        self._lease.release()

    @contextmanager
    def running(self, on_lost: Callable[[str], None]) -> Iterator[None]:
        """Mirror on a background thread while the block runs, calling ``on_lost`` (from that
        thread) if another process takes the prefix over; if the block fails, upload what
        there is (best effort) before the error goes on."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(on_lost,), name="bulkinvoke-mirror", daemon=True
        )
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
        for name in PLAN_COMPANIONS:
            if (self._run_dir / name).is_file():
                self._upload(name, immutable=True)
        self._upload(CONFIG_NAME, immutable=False)
        for name in wanted:
            self._upload(name, immutable=True)
        keep = set(wanted)
        stale = [n for n in self._remote if EVENT_NAME.fullmatch(n) and n not in keep]
        failed: list[str] = []
        for start in range(0, len(stale), 1000):
            chunk = stale[start : start + 1000]
            self._lease.ensure_held()
            response = self._s3.delete_objects(
                Bucket=self._target.bucket,
                Delete={"Objects": [{"Key": self._target.key + n} for n in chunk], "Quiet": True},
                **self._owner_args,
            )
            refused = {e.get("Key", "") for e in response.get("Errors", [])}
            for name in chunk:
                if self._target.key + name in refused:
                    failed.append(name)
                else:
                    del self._remote[name]
                    self._synced.pop(name, None)
        self._save_state()
        if failed:
            # Kept in _remote: the next sync deletes them again.
            raise MirrorError(f"could not delete {len(failed)} old files under {self.uri}")

    def _upload(self, name: str, *, immutable: bool) -> None:
        path = self._run_dir / name
        data = None if immutable else path.read_bytes()
        digest = self._local_digest(name) if data is None else md5_hex(data)
        if digest in (self._synced.get(name), self._remote.get(name)):
            return
        self._lease.ensure_held()
        conditions = {}
        if immutable:
            # Known before it is sent: a crash right after the upload must not make this
            # directory's own file look like another machine's on the next start.
            self._save_state({name: digest})
            # Written only where there is none: were another process writing this prefix,
            # its file of that name stays and this one is refused.
            conditions = {"IfNoneMatch": "*"}
        try:
            response = self._s3.put_object(
                Bucket=self._target.bucket,
                Key=self._target.key + name,
                Body=data if data is not None else path.read_bytes(),
                **conditions,
                **self._owner_args,
            )
            self._remote[name] = str(response.get("ETag", "")).strip('"')
        except ClientError as error:
            if not immutable or error_code(error) not in ("PreconditionFailed", "412"):
                raise
            # Already there: this process's own earlier upload (whose answer was lost), or
            # another writer's file.
            if self._remote_md5(name) != digest:
                raise LeaseLost(
                    f"{self.uri}{name} was written by another process: another machine is "
                    "going on with this run; this process stopped mirroring"
                ) from None
        self._synced[name] = digest

    def _remote_md5(self, name: str) -> str:
        response = self._s3.get_object(
            Bucket=self._target.bucket, Key=self._target.key + name, **self._owner_args
        )
        return md5_hex(response["Body"].read())

    def _holds(self, name: str, md5: str | None, state: MirrorState) -> bool:
        """Whether the prefix's ``name`` has the content whose MD5 is ``md5``."""
        etag = self._remote.get(name)
        if md5 is None or etag is None:
            return False
        if etag in (md5, state.etags.get(name)) and state.md5.get(name, md5) == md5:
            # The ETag of an upload without SSE-KMS is its MD5; else the one recorded for it.
            self._synced[name] = md5
            return True
        if self._remote_md5(name) == md5:
            self._synced[name] = md5
            return True
        return False

    def _remote_config(self) -> dict[str, Any]:
        response = self._s3.get_object(
            Bucket=self._target.bucket, Key=self._target.key + CONFIG_NAME, **self._owner_args
        )
        try:
            config = json.loads(response["Body"].read())
        except ValueError as error:
            raise MirrorError(f"{self.uri}{CONFIG_NAME} is not a run's run.json: {error}") from None
        if not isinstance(config, dict):
            raise MirrorError(f"{self.uri}{CONFIG_NAME} is not a run's run.json")
        return config

    def _check_same_run(self, local: dict[str, Any], state: MirrorState) -> None:
        """Refuse a prefix that holds another run than the local one."""
        if CONFIG_NAME not in self._remote:
            if any(EVENT_NAME.fullmatch(name) for name in self._remote):
                raise MirrorError(f"{self.uri} holds ledger files but no run.json: not this run")
            return
        remote = self._remote_config()
        same = run_identity(remote) == run_identity(local) and (
            PLAN_NAME not in self._remote
            or self._holds(PLAN_NAME, self._local_digest(PLAN_NAME), state)
        )
        if not same:
            raise MirrorError(
                f"{self.uri} holds another run (another manifest, shard or endpoint) than "
                f"{self._run_dir}: give each run a --ledger-uri of its own"
            )

    def _check_not_behind(self, state: MirrorState) -> None:
        """Refuse a prefix that went on without this directory: events beyond the local ones, or
        an event file a reader of the prefix would read that is neither one this directory
        uploaded (by ``mirror.json``) nor the same as a file here."""
        local = list_event_files(self._run_dir / EVENTS_DIR).last_seq
        remote = last_seq(self._remote)
        foreign = [
            name
            for name in needed_events(self._remote)
            if not self._holds(name, state.md5.get(name) or self._local_md5_if_any(name), state)
        ]
        if remote > local or foreign:
            raise MirrorError(
                f"{self.uri} went on without {self._run_dir} (events up to {remote}, here "
                f"{local}; {len(foreign)} files this directory did not write): another machine "
                "continued this run. Resume into an empty directory to continue from the "
                "mirror, or mirror this run elsewhere"
            )

    def _local_md5_if_any(self, name: str) -> str | None:
        return self._local_digest(name) if (self._run_dir / name).is_file() else None

    def _local_digest(self, name: str) -> str:
        if name not in self._local_md5:
            self._local_md5[name] = md5_hex((self._run_dir / name).read_bytes())
        return self._local_md5[name]

    def _save_state(self, uploading: dict[str, str] | None = None) -> None:
        MirrorState({**self._synced, **(uploading or {})}, self._remote).save(
            self._run_dir, self.uri
        )

    def _loop(self, on_lost: Callable[[str], None]) -> None:
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
                    on_lost(str(error))
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
    s3: S3Client | None,
    subscribers: Subscribers,
    owner_args: dict[str, str] | None = None,
    check_run: Callable[[dict[str, Any]], None] | None = None,
) -> Iterator[LedgerMirror | None]:
    """The mirror of ``run_dir`` (None without ``settings``), its lease held until the end;
    ``check_run`` vets the run.json of a run about to be downloaded from it."""
    if settings is None:
        yield None
        return
    if s3 is None:
        raise ValueError("a mirror needs an S3 client")
    mirror = LedgerMirror(s3, settings, run_dir, subscribers, owner_args)
    try:
        mirror.acquire(check_run)
    except (ClientError, BotoCoreError) as error:
        raise MirrorError(f"cannot use {settings.uri}: {error}") from error
    try:
        yield mirror
    finally:
        mirror.release()
