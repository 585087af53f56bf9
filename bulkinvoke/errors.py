"""Every error bulkinvoke raises for a user to read, and the exit code each one ends a command with.

Two branches under one root: a :class:`UsageError` means the command cannot do what was asked
and sent nothing (exit 2); a :class:`StoppedError` means a run or an export stopped part-way for
a reason that is not the user's input (a disk that cannot be written, S3 failing), and what is
on disk can be continued (exit 4). ``str(error)`` is always one line meant to be shown as it is.
A base module: every layer may import it, and it imports nothing of bulkinvoke but the exit codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bulkinvoke.exit_codes import ExitCode

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


class BulkinvokeError(Exception):
    """Root of the errors a command turns into one line and an exit code, never a traceback."""

    exit_code = ExitCode.USAGE


class UsageError(BulkinvokeError):
    """The input or the settings cannot work; nothing was sent."""


class StoppedError(BulkinvokeError):
    """Stopped part-way for a reason outside the user's input; what is on disk is whole."""

    exit_code = ExitCode.STOPPED


# -- the manifest, the AWS settings, the run's definition ---------------------------------


class ManifestError(UsageError):
    """The manifest as a whole cannot be used."""


class AwsConfigError(UsageError):
    """The AWS configuration cannot work (no region, unknown profile)."""


class RunError(UsageError):
    """A run cannot start as asked."""


class InvalidManifest(RunError):
    """Rows of the manifest are invalid (and --skip-invalid was not given); ``manifest`` holds
    every problem, each naming its file, line and reason."""

    def __init__(self, manifest: Any) -> None:
        self.manifest = manifest
        n = len(manifest.problems)
        super().__init__(f"{manifest.source}: {n} invalid row{'s' * (n != 1)}; nothing was sent")


class ShardError(UsageError):
    """A --shard / --shards combination that names no shard."""


# -- the ledger and its S3 mirror ------------------------------------------------------------


class LedgerError(UsageError):
    """The run directory cannot be used as asked."""


class LedgerLocked(LedgerError):
    """Another live process holds the run directory's lock."""


class LedgerCorrupt(LedgerError):
    """A ledger file cannot be read; the message names it and says how to recover."""


class RunExists(LedgerError):
    """``Ledger.create`` was pointed at a directory that already holds a run."""


class LedgerWriteError(LedgerError, StoppedError):
    """Writing to the ledger failed (disk full, I/O error); what is on disk is still readable."""

    exit_code = ExitCode.STOPPED


class MergeError(LedgerError):
    """The runs given are not the shards of one run."""


class MirrorError(LedgerError):
    """The mirror cannot be used as asked (nothing there, or it is ahead of the local run)."""


class LeaseHeld(LedgerLocked):
    """Another live process holds the S3 mirror's lease."""


class LeaseLost(LedgerError):
    """The lease this process held was taken by another process (it had expired)."""


# -- exports ------------------------------------------------------------------------------------


class ExportError(UsageError):
    """The export cannot be made as asked: file name, state name, path, AWS settings."""


class ExportStopped(ExportError, StoppedError):
    """Output downloads kept failing for a reason that is S3's (credentials, access, network)
    rather than one object's."""

    exit_code = ExitCode.STOPPED


def error_code(error: ClientError) -> str:
    """The service's error code of a botocore ``ClientError`` ("" when the answer had none)."""
    return str(error.response.get("Error", {}).get("Code", ""))
