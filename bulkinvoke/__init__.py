"""bulkinvoke: run a whole S3 dataset through a SageMaker asynchronous inference endpoint."""

from bulkinvoke.version import __version__

__all__ = ["__version__", "read_ledger"]


def __getattr__(name: str) -> object:
    # Lazily, so that `import bulkinvoke` does not pull in pyarrow and pandas.
    if name == "read_ledger":
        from bulkinvoke.export.frame import read_ledger

        return read_ledger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
