"""An async endpoint that is not the project's emulator: a plain ``ThreadingHTTPServer`` speaking
InvokeEndpointAsync as botocore's service model describes it, written from that model alone.

It shares no code with ``bulkinvoke``. Each call is answered 202 with the output location
``OUTPUT/<Filename or a UUID>``; the output object (a few bytes of JSON) is written to S3 by a
small pool of writers ``output_delay`` seconds later, as a real endpoint's queue does, so the
number of outputs on their way costs no thread. Optional: a capacity (a token bucket with a
one-second burst; above it, 400 ThrottlingException), a network latency (each answer waits that
long). ``GET /stats`` gives the calls accepted per inference ID.

    python bench/fake_endpoint.py --s3-url URL --output s3://bucket/prefix [--delay 2-5]

Used by the crash and submission benchmarks as "an endpoint this project did not write".
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3

_PATH = re.compile(r"/endpoints/([^/]+)/async-invocations")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client killed mid-call (the crash benchmark's) resets its connection: not news.
        pass


@dataclass
class FakeEndpointSettings:
    output: str  # s3://bucket/prefix where outputs land
    output_delay: tuple[float, float] = (0.0, 0.0)  # uniform, seconds after acceptance
    capacity: float | None = None  # calls per second; None: no limit
    network_latency: float = 0.0  # seconds each answer waits
    writers: int = 4
    seed: int = 0


@dataclass
class _State:
    accepted: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    outputs_written: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeEndpoint:
    """``s3_url`` None: no output is written (a benchmark of the calls alone)."""

    def __init__(self, settings: FakeEndpointSettings, s3_url: str | None) -> None:
        self.settings = settings
        bucket, _, prefix = settings.output.removeprefix("s3://").partition("/")
        self._bucket, self._prefix = bucket, prefix.strip("/")
        self._s3 = None
        if s3_url is not None:
            self._s3 = boto3.client(
                "s3",
                endpoint_url=s3_url,
                region_name="us-east-1",
                aws_access_key_id="fake",
                aws_secret_access_key="fake",
            )
            self._s3.create_bucket(Bucket=bucket)
        self.state = _State()
        self._rng = random.Random(settings.seed)
        self._due: list[tuple[float, str]] = []
        self._due_ready = threading.Condition()
        self._tokens = settings.capacity or 0.0
        self._filled_at = time.monotonic()
        self._stopping = False
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True)]
        self._threads += [
            threading.Thread(target=self._write_outputs, daemon=True)
            for _ in range(settings.writers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        with self._due_ready:
            self._stopping = True
            self._due_ready.notify_all()

    def accepted(self) -> Counter[str]:
        with self.state.lock:
            return Counter(self.state.accepted)

    # -- the service -----------------------------------------------------------------------

    def _admit(self) -> bool:
        if self.settings.capacity is None:
            return True
        with self.state.lock:
            now = time.monotonic()
            rate = self.settings.capacity
            self._tokens = min(rate, self._tokens + (now - self._filled_at) * rate)
            self._filled_at = now
            if self._tokens >= 1:
                self._tokens -= 1
                return True
            self.state.throttled += 1
            return False

    def invoke(self, headers: dict[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if self.settings.network_latency:
            time.sleep(self.settings.network_latency)
        inference_id = headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4())
        if not headers.get("x-amzn-sagemaker-inputlocation"):
            return 400, {"x-amzn-ErrorType": "ValidationError"}, {"message": "no InputLocation"}
        if not self._admit():
            error = {"x-amzn-ErrorType": "ThrottlingException"}
            return 400, error, {"message": "Rate exceeded"}
        name = headers.get("x-amzn-sagemaker-filename") or f"{uuid.uuid4()}.out"
        extension = headers.get("x-amzn-sagemaker-s3outputpathextension", "").strip("/")
        key = "/".join(p for p in (self._prefix, extension, name) if p)
        with self.state.lock:
            self.state.accepted[inference_id] += 1
            low, high = self.settings.output_delay
            due = time.monotonic() + self._rng.uniform(low, high)
        if self._s3 is not None:
            with self._due_ready:
                heapq.heappush(self._due, (due, key))
                self._due_ready.notify()
        location = {"x-amzn-sagemaker-outputlocation": f"s3://{self._bucket}/{key}"}
        return 202, location, {"InferenceId": inference_id}

    def _write_outputs(self) -> None:
        while True:
            with self._due_ready:
                while not self._stopping and (not self._due or self._due[0][0] > time.monotonic()):
                    wait = self._due[0][0] - time.monotonic() if self._due else None
                    self._due_ready.wait(wait)
                if self._stopping:
                    return
                _, key = heapq.heappop(self._due)
            assert self._s3 is not None
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=b'{"result": "ok"}')
            with self.state.lock:
                self.state.outputs_written += 1

    def stats(self) -> dict[str, Any]:
        with self.state.lock:
            return {
                "accepted": sum(self.state.accepted.values()),
                "throttled": self.state.throttled,
                "outputs_written": self.state.outputs_written,
            }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: without this, each answer waits for the
            # client's delayed ACK (40 ms).
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if not _PATH.fullmatch(self.path.partition("?")[0]):
                    self._reply(404, {"x-amzn-ErrorType": "UnknownOperationException"}, {})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                self._reply(*endpoint.invoke(headers))

            def do_GET(self) -> None:
                self._reply(200, {}, endpoint.stats())

            def _reply(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s3-url", help="where outputs are written (none: no outputs)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--delay", default="0-0", help="output delay range, seconds: LOW-HIGH")
    parser.add_argument("--capacity", type=float)
    args = parser.parse_args()
    low, _, high = args.delay.partition("-")
    settings = FakeEndpointSettings(
        args.output, (float(low), float(high or low)), capacity=args.capacity
    )
    endpoint = FakeEndpoint(settings, args.s3_url)
    print(f"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME={endpoint.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        endpoint.stop()


if __name__ == "__main__":
    main()
