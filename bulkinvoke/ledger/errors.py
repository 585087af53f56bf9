"""Errors of the ledger; every message is meant to be shown to the user as it is."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every ledger error."""


class LedgerLocked(LedgerError):
    """Another live process holds the run directory's lock."""


class LedgerCorrupt(LedgerError):
    """A ledger file cannot be read; the message names it and says how to recover."""


class LedgerWriteError(LedgerError):
    """Writing to the ledger failed (disk full, I/O error); what is on disk is still readable."""


class RunExists(LedgerError):
    """``Ledger.create`` was pointed at a directory that already holds a run."""
