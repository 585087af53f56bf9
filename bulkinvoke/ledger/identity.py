"""What makes two run directories (or a run directory and its S3 mirror, or the shards of a
split) the same run: one definition for every place that compares them."""

from __future__ import annotations

from typing import Any

# The options that decide what an attempt sends (its endpoint, request and inference ID): a
# continued run must keep them, and runs that differ in them are not parts of one run.
REQUEST_DEFINING_OPTIONS = ("endpoint", "request", "output_path_extension", "id_namespace")


def run_identity(config: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two run.json files the same run: the manifest, the shard and the options that
    define the requests."""
    manifest = config.get("manifest") or {}
    options = config.get("options") or {}
    return (
        manifest.get("fingerprint"),
        config.get("shard"),
        *(options.get(name) for name in REQUEST_DEFINING_OPTIONS),
    )
