"""Where a run's ledger is mirrored (``--ledger-uri``), as run.json records it, and what this
run directory last put there (``mirror.json``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bulkinvoke.errors import MirrorError
from bulkinvoke.ledger.files import CONFIG_NAME, read_config, write_durably
from bulkinvoke.scale.lease import DEFAULT_LEASE_SECONDS

if TYPE_CHECKING:
    from bulkinvoke.scale.shards import Shard

# In the run directory: what the prefix held when this directory last synced it.
STATE_NAME = "mirror.json"


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


@dataclass(frozen=True)
class MirrorState:
    """``mirror.json``: what this directory put under the prefix (content MD5, by key; written
    before each upload) and the ETags S3 gave those objects."""

    md5: dict[str, str] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path, uri: str) -> MirrorState:
        """The state saved for the prefix ``uri`` (empty if none, or saved for another)."""
        try:
            saved = json.loads((run_dir / STATE_NAME).read_bytes())
        except (OSError, ValueError):
            return cls()
        if not isinstance(saved, dict) or saved.get("uri") != uri:
            return cls()
        return cls(_strings(saved.get("md5")), _strings(saved.get("etags")))

    def save(self, run_dir: Path, uri: str) -> None:
        state = {
            "uri": uri,
            "md5": dict(sorted(self.md5.items())),
            "etags": dict(sorted(self.etags.items())),
        }
        write_durably(run_dir / STATE_NAME, json.dumps(state, indent=1).encode())


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
