"""bulkinvoke: run a whole S3 dataset through a SageMaker asynchronous inference endpoint."""

__version__ = "0.1.0"
