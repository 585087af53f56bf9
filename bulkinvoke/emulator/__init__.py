"""A local SageMaker asynchronous inference endpoint, with moto's S3, SNS and SQS.

``start_local_stack`` runs everything on loopback in background threads of this process; the
``bulkinvoke emulator`` command does the same from a shell. The core of bulkinvoke never
imports this package: it talks to it over HTTP like to the real service.
"""

from bulkinvoke.emulator.config import EmulatorConfig, EndpointSpec, Latency
from bulkinvoke.emulator.handlers import Handler
from bulkinvoke.emulator.stack import LocalStack, start_local_stack

__all__ = [
    "EmulatorConfig",
    "EndpointSpec",
    "Handler",
    "Latency",
    "LocalStack",
    "start_local_stack",
]
