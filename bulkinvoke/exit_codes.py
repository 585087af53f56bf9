"""Exit codes of the ``bulkinvoke`` command: scripts rely on these numbers."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every item succeeded (with --no-wait: every item was accepted)
    SOME_FAILED = 1  # some items failed, expired or were rejected
    USAGE = 2  # bad usage or invalid input; nothing was submitted
    INCOMPLETE = 3  # --timeout ran out; what is outstanding stays resumable
    STOPPED = 4  # stopped by a systemic error (ledger write errors too) or --max-failures
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; resumable


EXIT_CODES_HELP = (
    "Exit codes: 0 every item succeeded (with --no-wait: every item was accepted); "
    "1 some items failed, expired or were rejected; 2 bad usage or invalid input, nothing "
    "submitted; 3 incomplete (--timeout ran out), resumable; 4 stopped by a systemic error "
    "(endpoint not found, access denied, expired credentials, a ledger that cannot be "
    "written) or by --max-failures, resumable; "
    "130 interrupted by Ctrl-C or SIGTERM, resumable."
)
