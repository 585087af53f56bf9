"""The baseline a user would write instead of bulkinvoke: one boto3 client shared by a
``ThreadPoolExecutor``, one ``invoke_endpoint_async`` per manifest row, no ledger, no retries of
its own.

    python bench/boto3_loop.py MANIFEST --endpoint NAME [--concurrency 16]
        [--config default|bulkinvoke] [--times FILE]

``--config default`` is the plain client a user gets from ``boto3.client(...)``;
``--config bulkinvoke`` is the botocore client bulkinvoke makes (its ``Config``), used as a
botocore client (bulkinvoke itself sends through bulkinvoke.calls.transport unless told otherwise).
``--times`` writes each call's completion time (``time.time()``, float64) for the steady-state
analysis the benchmark makes of it.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def make_client(config: str, concurrency: int) -> Any:
    if config == "bulkinvoke":
        from bulkinvoke.calls.aws import AwsSettings, Transport, make_clients

        settings = AwsSettings(transport=Transport.BOTOCORE)
        return make_clients(settings, max_connections=concurrency + 4).sagemaker_runtime
    import boto3

    return boto3.client("sagemaker-runtime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--config", choices=("default", "bulkinvoke"), default="default")
    parser.add_argument("--times", type=Path)
    args = parser.parse_args()
    locations = args.manifest.read_text().split()[1:]  # after the CSV header
    client = make_client(args.config, args.concurrency)
    done: list[float] = []

    def invoke(location: str) -> None:
        # An ID of the same length as bulkinvoke's, derived from the input like bulkinvoke's.
        inference_id = "bi-" + hashlib.sha256(location.encode()).hexdigest()[:24]
        client.invoke_endpoint_async(
            EndpointName=args.endpoint,
            InputLocation=location,
            InferenceId=inference_id,
            Filename=f"{inference_id}.out",
        )
        done.append(time.time())

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        # list() so that an exception in any call ends the loop with it.
        list(pool.map(invoke, locations))
    if args.times:
        with args.times.open("wb") as out:
            array("d", sorted(done)).tofile(out)


if __name__ == "__main__":
    main()
