"""A raw keep-alive load generator for the emulator's accept path.

    python -m tests.emulator.loadgen              # starts a stack, loads it from a child process
    python -m tests.emulator.loadgen --latency 60 # the same, workers idle: the accept path alone
    python -m tests.emulator.loadgen --url URL    # loads a running emulator

Each thread holds one HTTP/1.1 connection and sends signed-looking InvokeEndpointAsync calls
back to back (the emulator does not verify signatures), so the figure is the emulator's, not
botocore's.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

HEADERS = {
    "Authorization": (
        "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/sagemaker/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0000"
    ),
    "X-Amz-Date": "20240101T000000Z",
    "Content-Length": "0",
}


def run_load(
    url: str, endpoint: str, input_location: str, *, seconds: float, threads: int
) -> tuple[int, int, float]:
    """(accepted, other responses, accepted calls per second) over ``seconds``."""
    parts = urlsplit(url)
    headers = {**HEADERS, "X-Amzn-SageMaker-InputLocation": input_location}
    path = f"/endpoints/{endpoint}/async-invocations"
    counts = [[0, 0] for _ in range(threads)]
    deadline = time.monotonic() + seconds

    def client(slot: list[int]) -> None:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        while time.monotonic() < deadline:
            connection.request("POST", path, headers=headers)
            response = connection.getresponse()
            response.read()
            slot[0 if response.status == 202 else 1] += 1
        connection.close()

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(slot,)) for slot in counts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    accepted = sum(slot[0] for slot in counts)
    return accepted, sum(slot[1] for slot in counts), accepted / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running emulator's SageMaker URL")
    parser.add_argument("--endpoint", default="bench")
    parser.add_argument("--input", default="s3://bench-in/input.json")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--latency", default="0", help="the started stack's latency")
    args = parser.parse_args()
    if args.url:
        accepted, other, rate = run_load(
            args.url, args.endpoint, args.input, seconds=args.seconds, threads=args.threads
        )
        print(f"accepted={accepted} other={other} rate={rate:.0f}/s")
        return

    import boto3

    from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, start_local_stack

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    endpoints = [EndpointSpec(args.endpoint, "s3://bench-out/out")]
    config = EmulatorConfig(latency=args.latency)
    with start_local_stack(endpoints, config) as stack:
        s3 = boto3.client("s3", endpoint_url=stack.s3_url, region_name="us-east-1")
        bucket, key = args.input.removeprefix("s3://").split("/", 1)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=b'{"x": 1}')
        command = [sys.executable, "-m", "tests.emulator.loadgen", "--url", stack.sagemaker_url]
        command += ["--seconds", str(args.seconds), "--threads", str(args.threads)]
        command += ["--endpoint", args.endpoint, "--input", args.input]
        subprocess.run(command, check=True)
        stats = stack.stats()
        print(f"completed while loaded: {stats['completed']}, queued: {stats['queue_depth']}")


if __name__ == "__main__":
    main()
