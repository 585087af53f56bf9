"""Deterministic shards of a manifest, so that many machines can share one dataset.

A row belongs to shard::

    int.from_bytes(sha256(id.encode("utf-8")).digest()[:8], "big") % count

where ``id`` is the inference ID of the row's first attempt (``ids.inference_id``: the row's own
``inference_id`` if it has one, else the generated ``bi-`` ID). Shards are numbered from 0, like
``AWS_BATCH_JOB_ARRAY_INDEX`` and Kubernetes' ``JOB_COMPLETION_INDEX``. The rule depends only on
the ID, so every machine that reads the same manifest with the same endpoint and
``--id-namespace`` agrees on every row's shard, whatever the order or format of the manifest;
and a hash keeps the shards balanced even when the manifest is sorted by something that
correlates with cost (a date, a size).

Rows refused by validation (kept as ``rejected`` with ``--skip-invalid``) have no usable ID of
their own: they go to the shard of the ID their ``input_location`` would get. A duplicate row
goes with the row it repeats. So every row of the manifest is in exactly one shard, and row
numbers stay the manifest's: the shards' exports concatenate into the whole.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypedDict

from bulkinvoke.errors import ShardError
from bulkinvoke.manifest.ids import inference_id

if TYPE_CHECKING:
    from bulkinvoke.manifest.loader import Manifest

ARRAY_INDEX_ENV = "AWS_BATCH_JOB_ARRAY_INDEX"
ARRAY_SIZE_ENV = "AWS_BATCH_JOB_ARRAY_SIZE"
# Kubernetes Indexed Jobs give each pod its index; the number of completions is not in the
# environment (pass --shards).
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
INDEX_ENVS = (ARRAY_INDEX_ENV, COMPLETION_INDEX_ENV)
# AWS Batch array jobs have at most 10,000 children.
MAX_SHARDS = 10_000
_SPEC = re.compile(r"\s*(\d+)\s*(?:/\s*(\d+)\s*)?")


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ShardError(f"the number of shards must be 1-{MAX_SHARDS}, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"shard {self.index} does not exist: shards of {self.count} are numbered "
                f"0-{self.count - 1}"
            )

    @property
    def label(self) -> str:
        """``shard-K-of-N``: the suffix of the default run directory and the mirror's prefix."""
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def to_config(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> Shard | None:
        return cls(int(config["index"]), int(config["count"])) if config else None


def shard_of(identifier: str, count: int) -> int:
    """The shard (0-based, of ``count``) that an attempt-1 inference ID belongs to."""
    digest = hashlib.sha256(identifier.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def resolve_shard(spec: str | None, shards: int | None, environ: Mapping[str, str]) -> Shard | None:
    """The shard that ``--shard`` (``K/N``, ``K``, or ``auto``) and ``--shards N`` name.

    ``auto`` takes K from ``AWS_BATCH_JOB_ARRAY_INDEX`` (AWS Batch array jobs) or
    ``JOB_COMPLETION_INDEX`` (Kubernetes Indexed Jobs); N comes from ``--shards``, else from
    ``K/N``, else from ``AWS_BATCH_JOB_ARRAY_SIZE``.
    """
    if spec is None:
        if shards is not None:
            raise ShardError("--shards needs --shard (K, K/N or auto) to say which shard to run")
        return None
    if spec.strip().lower() == "auto":
        index, count_text = _index_from_environment(environ), None
    else:
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ShardError(f"--shard takes K/N, K (with --shards N) or auto, not {spec!r}")
        index, count_text = int(match[1]), match[2]
    count = _count(count_text, shards, environ)
    return Shard(index, count)


def _index_from_environment(environ: Mapping[str, str]) -> int:
    found = {name: environ[name] for name in INDEX_ENVS if name in environ}
    if not found:
        raise ShardError(
            f"--shard auto reads {ARRAY_INDEX_ENV} (set in the children of an AWS Batch array "
            f"job) or {COMPLETION_INDEX_ENV} (set in the pods of a Kubernetes Indexed Job), and "
            "neither is set: elsewhere pass --shard K/N"
        )
    indexes = set()
    for name, text in found.items():
        match = _SPEC.fullmatch(text)
        if match is None or match[2] is not None:
            raise ShardError(f"{name}={text!r} is not a shard number")
        indexes.add(int(match[1]))
    if len(indexes) > 1:
        said = " and ".join(f"{name}={text}" for name, text in found.items())
        raise ShardError(f"--shard auto: {said} name different shards")
    return indexes.pop()


def _count(given: str | None, shards: int | None, environ: Mapping[str, str]) -> int:
    if given is not None and shards is not None and int(given) != shards:
        raise ShardError(f"--shard says {given} shards but --shards says {shards}")
    if given is not None:
        return int(given)
    if shards is not None:
        return shards
    size = environ.get(ARRAY_SIZE_ENV)
    if size is None or not size.strip().isdigit():
        raise ShardError(f"how many shards? pass --shards N (or set {ARRAY_SIZE_ENV})")
    return int(size)


def select_shard(manifest: Manifest, shard: Shard, namespace: str, endpoint: str) -> Manifest:
    """The part of a validated manifest that is ``shard``'s (see the module's docstring)."""
    import pyarrow as pa

    table = manifest.table
    locations = table.column("input_location").to_pylist()
    own_ids = (
        table.column("inference_id").to_pylist()
        if "inference_id" in table.column_names
        else [None] * table.num_rows
    )
    mine = [
        shard_of(inference_id(namespace, endpoint, location, 1, own), shard.count) == shard.index
        for location, own in zip(locations, own_ids, strict=True)
    ]
    selected = table.filter(pa.array(mine, pa.bool_()))
    kept_rows = set(selected.column("row").to_pylist())
    problems = [
        problem
        for problem in manifest.problems
        if shard_of(inference_id(namespace, endpoint, problem.input_location or "", 1), shard.count)
        == shard.index
    ]
    duplicates = [d for d in manifest.duplicates if d.first_row in kept_rows]
    return replace(manifest, table=selected, problems=problems, duplicates=duplicates)


class ShardSummary(TypedDict):
    count: int
    included: list[int]
    missing: list[int]


def shard_summary(configs: Sequence[Mapping[str, Any]]) -> ShardSummary | None:
    """The report's ``run.shards``: of how many shards these runs are, which are here and which
    are missing; None for a run of the whole manifest."""
    shards = [Shard.from_config(config.get("shard")) for config in configs]
    present = [shard for shard in shards if shard is not None]
    if not present:
        return None
    count = present[0].count
    included = sorted({shard.index for shard in present})
    return {
        "count": count,
        "included": included,
        "missing": sorted(set(range(count)) - set(included)),
    }
