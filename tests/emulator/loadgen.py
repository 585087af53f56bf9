"""A raw keep-alive load generator for the emulator's accept path.

    python -m tests.emulator.loadgen              # starts a stack, loads it from a child process
    python -m tests.emulator.loadgen --latency 60 # the same, workers idle: the accept path alone
    python -m tests.emulator.loadgen --url URL    # loads a running emulator

Each thread holds one HTTP/1.1 connection and sends one InvokeEndpointAsync call back to back,
signed once with the credentials of the environment (``local`` by default; a signature stays
valid for five minutes): the request's bytes are made once, and of each answer only the status
and Content-Length are read, so that the generator spends next to no CPU and the figure is the
emulator's, not the client's.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit


def run_load(
    url: str, endpoint: str, input_location: str, *, seconds: float, threads: int
) -> tuple[int, int, float]:
    """(accepted, other responses, accepted calls per second) over ``seconds``."""
    parts = urlsplit(url)
    headers = _signed_headers(url, endpoint, input_location)
    request = f"POST /endpoints/{endpoint}/async-invocations HTTP/1.1\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    request_bytes = (request + "\r\n").encode()
    counts = [[0, 0] for _ in range(threads)]
    deadline = time.monotonic() + seconds

    def client(slot: list[int]) -> None:
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while time.monotonic() < deadline:
                sock.sendall(request_bytes)
                slot[0 if _read_answer(sock) == 202 else 1] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(slot,)) for slot in counts]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    accepted = sum(slot[0] for slot in counts)
    return accepted, sum(slot[1] for slot in counts), accepted / elapsed


def _signed_headers(url: str, endpoint: str, input_location: str) -> dict[str, str]:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        "POST",
        f"{url}/endpoints/{endpoint}/async-invocations",
        headers={"X-Amzn-SageMaker-InputLocation": input_location, "Content-Length": "0"},
        data=b"",
    )
    credentials = Credentials(
        os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        os.environ.get("AWS_SESSION_TOKEN"),
    )
    SigV4Auth(credentials, "sagemaker", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")).add_auth(
        request
    )
    return {"Host": urlsplit(url).netloc, **dict(request.headers.items())}


def _read_answer(sock: socket.socket) -> int:
    """Read one whole answer off ``sock``; its status code."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the emulator closed the connection")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the emulator closed the connection")
        body += chunk
    return int(head.split(b" ", 2)[1])


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
    credentials = {os.environ["AWS_ACCESS_KEY_ID"]: os.environ["AWS_SECRET_ACCESS_KEY"]}
    config = EmulatorConfig(latency=args.latency, credentials=credentials)
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
