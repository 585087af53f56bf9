"""What a run is and whether a directory holds it: the options a run keeps in run.json, the
checks that refuse a run before anything is sent, and the creation of a run directory from a
validated manifest."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkinvoke.aws_protocols import S3Client
from bulkinvoke.calls.aws import AwsSettings
from bulkinvoke.calls.staging import stage_prefix
from bulkinvoke.errors import InvalidManifest, RunError
from bulkinvoke.events import Subscribers
from bulkinvoke.ledger.identity import REQUEST_DEFINING_OPTIONS
from bulkinvoke.ledger.schema import Event
from bulkinvoke.ledger.store import Ledger
from bulkinvoke.ledger.views import duplicates_table
from bulkinvoke.manifest.loader import Manifest, problems_table, read_manifest
from bulkinvoke.request_options import (
    RequestOptions,
    check_endpoint_name,
    check_output_path_extension,
)
from bulkinvoke.run.slots import DEFAULT_CONCURRENCY, SIZED_MAXIMUM
from bulkinvoke.run.staging import (
    StagedRecords,
    StagingCount,
    keep_record_columns,
    records_manifest,
    upload_payloads,
)
from bulkinvoke.scale.shards import Shard, select_shard
from bulkinvoke.states import State

if TYPE_CHECKING:
    from bulkinvoke.scale.mirror_settings import MirrorSettings

RUNS_ROOT = Path("bulkinvoke-runs")
CONFIG_VERSION = 1


@dataclass(frozen=True)
class RunOptions:
    """What the user chose for a run; kept in run.json so resume and retry use the same."""

    endpoint: str
    request: RequestOptions = field(default_factory=RequestOptions)
    output_path_extension: str | None = None
    id_namespace: str = ""
    rate: float | None = None
    # None: 16, or with a rate as many as it takes (run.slots), at most SIZED_MAXIMUM.
    concurrency: int | None = None
    max_in_flight: int | None = None
    max_failures: str | None = None
    expire_after: float | None = None
    aws: AwsSettings = field(default_factory=AwsSettings)
    # Describe the endpoint before sending, and refuse one that cannot take the calls.
    check_endpoint: bool = True
    # How long the model takes over one item: with the endpoint's concurrency, the default
    # --max-in-flight (run/endpoint.py) and the dry run's estimates (run/estimate.py).
    seconds_per_item: float | None = None
    # Seconds between two reads of the endpoint's CloudWatch backlog while a session sends
    # (run/endpoint_load.py); 0: never read. Needs check_endpoint.
    endpoint_metrics_seconds: float = 60.0
    # --stage: the manifest is a table of records whose payloads are put under this S3 prefix
    # (run/staging.py); --payload-column names the payload's column or key.
    stage: str | None = None
    payload_column: str | None = None

    def to_config(self) -> dict[str, Any]:
        config = asdict(self)
        config["aws"] = self.aws.to_config()
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunOptions:
        values = dict(config)
        values["request"] = RequestOptions(**values["request"])
        values["aws"] = AwsSettings.from_config(values["aws"])
        return cls(**values)

    @property
    def most_calls_in_progress(self) -> int:
        if self.concurrency is not None:
            return self.concurrency
        return SIZED_MAXIMUM if self.rate is not None else DEFAULT_CONCURRENCY

    @property
    def slots_sized_for_rate(self) -> float | None:
        """The rate to size the call slots for (``run.slots``), when none were given."""
        return self.rate if self.concurrency is None else None

    def with_rate_shared_by(self, shards: int | None) -> RunOptions:
        """With ``--shards N``, ``--rate R`` is the endpoint's total: each shard takes R/N (what
        run.json records). ``--shard K/N`` alone leaves the rate per shard."""
        if self.rate is None or shards is None:
            return self
        return replace(self, rate=self.rate / shards)


def default_run_dir(manifest: str, endpoint: str, shard: Shard | None = None) -> Path:
    name = manifest.rstrip("/").rsplit("/", 1)[-1] or manifest
    stem = Path(name).stem if not manifest.startswith("s3://") else name
    suffix = f"-{shard.label}" if shard else ""
    return RUNS_ROOT / re.sub(r"[^A-Za-z0-9._-]+", "_", f"{stem}-{endpoint}{suffix}")


def parse_max_failures(text: str | None, total: int) -> int | None:
    """``N`` failures, or ``P%`` of the run's items, after which the run stops."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(?:(\d+)|(\d+(?:\.\d+)?)\s*%)\s*", text)
    if match is None:
        raise RunError(
            f"--max-failures takes a whole count (10) or a percentage (2.5%), not {text!r}"
        )
    count, percent = match.groups()
    if count is not None:
        return int(count)
    if float(percent) > 100:
        raise RunError(f"--max-failures {text.strip()} is more than every item: at most 100%")
    return int(total * float(percent) / 100)


def check_options(options: RunOptions) -> None:
    """Refuse, before anything is written, options that would fail every call or the run later
    (and, saved in run.json, every resume of it too)."""
    problems = [check_endpoint_name(options.endpoint), *options.request.problems()]
    if options.output_path_extension is not None:
        problems.append(check_output_path_extension(options.output_path_extension))
    if any(problems):
        raise RunError("; ".join(p for p in problems if p))
    if options.rate is not None and not (math.isfinite(options.rate) and options.rate > 0):
        raise RunError(f"--rate must be a positive number of calls per second, not {options.rate}")
    parse_max_failures(options.max_failures, 0)
    if options.payload_column is not None and options.stage is None:
        raise RunError("--payload-column names a records' column: it needs --stage s3://...")
    if options.stage is not None:
        try:
            stage_prefix(options.stage)
        except ValueError as error:
            raise RunError(str(error)) from None
    seconds = options.seconds_per_item
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise RunError(f"--seconds-per-item must be a positive number, not {seconds}")
    every = options.endpoint_metrics_seconds
    if not (math.isfinite(every) and every >= 0):
        raise RunError(f"--endpoint-metrics-every must be 0 or more seconds, not {every}")


def read_run_manifest(
    source: str,
    s3_client: S3Client | None,
    options: RunOptions,
    *,
    skip_invalid: bool,
    shard: Shard | None,
) -> tuple[Manifest, StagedRecords | None]:
    """The manifest a run of ``options`` sends (only ``shard``'s rows, if given); refused with
    ``InvalidManifest`` if it has bad rows, unless ``skip_invalid``. With ``options.stage``,
    ``source`` holds records: they come back too, their payloads not staged yet
    (``stage_run_payloads``)."""
    stage = options.stage
    staged = records_manifest(source, stage, options.payload_column) if stage else None
    manifest = (
        staged.manifest
        if staged
        else read_manifest(
            source, s3_client=s3_client, expected_bucket_owner=options.aws.expected_bucket_owner
        )
    )
    if manifest.problems and not skip_invalid:
        raise InvalidManifest(manifest)
    if shard is not None:
        manifest = select_shard(manifest, shard, options.id_namespace, options.endpoint)
    return manifest, staged


def stage_run_payloads(
    staged: StagedRecords,
    manifest: Manifest,
    options: RunOptions,
    s3_client: S3Client,
    subscribers: Subscribers,
    *,
    upload: bool,
) -> StagingCount:
    """Put the payloads of ``manifest``'s records under ``--stage`` (``upload=False``: count
    those there already)."""
    assert options.stage is not None
    return upload_payloads(
        staged,
        manifest,
        options.stage,
        s3_client,
        subscribers,
        # --concurrency, else 16: not the call slots --rate alone may size up to 256.
        concurrency=options.concurrency or DEFAULT_CONCURRENCY,
        expected_bucket_owner=options.aws.expected_bucket_owner,
        upload=upload,
    )


def open_or_create(
    run_dir: Path,
    manifest: Manifest,
    options: RunOptions,
    shard: Shard | None,
    mirror: MirrorSettings | None,
    *,
    local: bool = False,
) -> Ledger:
    """The run in ``run_dir``, checked to be this one, or a new one. ``local``: its endpoint is
    the embedded emulator of ``--local``, which ends with the process (kept in run.json)."""
    if Ledger.exists(run_dir):
        ledger = Ledger.open(run_dir)
        try:
            check_same_run(ledger.config, manifest, options, shard)
            check_same_kind(ledger.config, run_dir, local=local)
            ledger.config["options"] = options.to_config()
            if mirror is not None:
                ledger.config["mirror"] = mirror.to_config()
            ledger.save_config(ledger.config)
            keep_record_columns(run_dir, manifest)  # a crash may have come before it
        except BaseException:
            ledger.close()
            raise
        return ledger
    import pyarrow as pa

    plan = manifest.table
    if manifest.problems:
        plan = pa.concat_tables(
            [plan, problems_table(manifest.problems)], promote_options="default"
        )
        plan = plan.sort_by("row")
    config = {
        "version": CONFIG_VERSION,
        "created_at": time.time(),
        "local": local,
        "manifest": {
            "source": str(manifest.source),
            "fingerprint": manifest.fingerprint,
            "rows": manifest.row_count,
            "items": plan.num_rows,
            "duplicates": len(manifest.duplicates),
        },
        "options": options.to_config(),
        "shard": shard.to_config() if shard else None,
        "mirror": mirror.to_config() if mirror else None,
    }
    duplicates = duplicates_table(
        [d.row for d in manifest.duplicates], [d.first_row for d in manifest.duplicates]
    )
    ledger = Ledger.create(run_dir, config, plan, duplicates)
    try:
        keep_record_columns(run_dir, manifest)
        rejections = [(p.row, p.reason) for p in manifest.problems if p.row is not None]
        record_rejections(ledger, rejections)
    except BaseException:
        ledger.close()  # and its lock: the run exists, and resume records them
        raise
    return ledger


def record_rejections(ledger: Ledger, rejections: list[tuple[int, str]]) -> None:
    """Record the rows manifest validation refused, (row, reason) each, as rejected."""
    if not rejections:
        return
    now = time.time()
    ledger.record_many(
        Event(row, 1, State.REJECTED, now, error=reason) for row, reason in rejections
    )
    ledger.flush()


def check_same_kind(config: dict[str, Any], run_dir: Path, *, local: bool) -> None:
    """A run made with --local is only ever continued with --local, and any other never is:
    the emulator's calls and outputs ended with its command, and a real endpoint's live on."""
    if bool(config.get("local")) == local:
        return
    if local:
        raise RunError(
            f"the run in {run_dir} sends to a real endpoint: --local cannot continue it "
            "(use another --run-dir for a local run)"
        )
    raise RunError(local_run_message(run_dir))


def local_run_message(run_dir: Path) -> str:
    return (
        f"the run in {run_dir} was made with --local, whose endpoint ended with that command: "
        "run the same `bulkinvoke submit ... --local` command again to finish it, or use "
        "another --run-dir"
    )


def check_shard(config: dict[str, Any], shard: Shard | None) -> None:
    before = Shard.from_config(config.get("shard"))
    if before != shard:
        held = f"shard {before}" if before else "the whole manifest"
        asked = f"shard {shard}" if shard else "the whole manifest"
        raise RunError(
            f"the run in this directory is of {held}, not {asked}: each shard is a run of its "
            "own, in its own --run-dir"
        )


def check_same_run(
    config: dict[str, Any], manifest: Manifest, options: RunOptions, shard: Shard | None
) -> None:
    check_shard(config, shard)
    saved = config["manifest"]
    if saved["fingerprint"] != manifest.fingerprint:
        raise RunError(
            f"the run in this directory was made from a different manifest "
            f"({saved['source']}, {saved['fingerprint'][:19]}...); "
            "use another --run-dir, or `bulkinvoke resume` to continue the existing run"
        )
    before = RunOptions.from_config(config["options"])
    for name, was, now in _fixed_values(before, options):
        if was != now:
            shown = "(not shown: custom attributes are sensitive)"
            if name != "custom_attributes":
                shown = f"(--{name.replace('_', '-')} {was!r}, not {now!r})"
            raise RunError(
                f"this run was started with a different --{name.replace('_', '-')} {shown}; "
                "a continued run must send the same requests: pass the same options, "
                "use `bulkinvoke resume`, or start a new run with another --run-dir"
            )


def _fixed_values(before: RunOptions, now: RunOptions) -> Iterator[tuple[str, Any, Any]]:
    """(option, value before, value now) for every option a continued run must keep."""
    for name in REQUEST_DEFINING_OPTIONS:
        if name == "request":
            for option in fields(RequestOptions):
                yield (
                    option.name,
                    getattr(before.request, option.name),
                    getattr(now.request, option.name),
                )
        else:
            yield name, getattr(before, name), getattr(now, name)
