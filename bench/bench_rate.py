"""Rate accuracy: ``bulkinvoke submit --rate 100 --no-wait`` for 30 s (10 s with --quick)
against an emulator with no capacity limit.

    python bench/run.py rate [--quick]

The calls are timed where the endpoint sees them: bulkinvoke talks to the emulator through a
relay in this process that notes when each request arrives (the ledger's ``submitted_at`` is
when the answer came back, which adds the round trip's jitter). The achieved rate is
(calls - 1) / (last - first), once the slow start is over (``SLOW_START_S`` after the first
call) and over the whole run; the burst figure is the most calls in any window [t, t + 1 s).
The ledger's count of accepted calls is checked against the relay's.
"""

from __future__ import annotations

import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from benchlib import (
    BULKINVOKE,
    ENDPOINT,
    Emulator,
    Figure,
    run_measured,
    submitted_times,
    write_manifest,
)

from bulkinvoke.calls.limiter import SLOW_START_S

RATE = 100
# Timestamps of a run over tens of seconds, to the millisecond: the achieved rate is known to
# about this fraction, and no better.
RATE_TOLERANCE = 0.001
_REQUEST_START = b"POST /endpoints/"


class ArrivalRelay(socketserver.ThreadingTCPServer):
    """Relays TCP connections to ``upstream`` and notes the time each request starts to arrive
    (an InvokeEndpointAsync request is a few hundred bytes: it comes in one read)."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.arrivals: list[float] = []
        super().__init__(("127.0.0.1", 0), _Relay)
        threading.Thread(target=self.serve_forever, args=(0.1,), daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Relay(socketserver.BaseRequestHandler):
    server: ArrivalRelay

    def handle(self) -> None:
        client: socket.socket = self.request
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with socket.create_connection(self.server.upstream) as upstream:
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            answers = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
            answers.start()
            while data := client.recv(65536):
                now = time.time()
                self.server.arrivals.extend([now] * data.count(_REQUEST_START))
                upstream.sendall(data)
            upstream.shutdown(socket.SHUT_WR)
            answers.join()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass  # either side went away


def busiest_second(times: Sequence[float]) -> int:
    """The most of the sorted ``times`` in any half-open window one second long."""
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def rate_of(times: Sequence[float]) -> float:
    return (len(times) - 1) / (times[-1] - times[0])


def run(quick: bool) -> list[Figure]:
    seconds = 10 if quick else 30
    items = RATE * seconds
    with Emulator(workers=16) as emulator, tempfile.TemporaryDirectory() as directory:
        emulator.warm_up()
        relay = ArrivalRelay(emulator.sagemaker_url)
        manifest = write_manifest(Path(directory) / "manifest.csv", items, "rate")
        run_dir = Path(directory) / "run"
        command = [BULKINVOKE, "submit", str(manifest), "--endpoint", ENDPOINT, "--no-wait"]
        command += ["--rate", str(RATE), "--quiet", "--run-dir", str(run_dir)]
        env = emulator.env()
        env["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"] = relay.url
        try:
            run_measured(command, env=env)
        finally:
            relay.shutdown()
            relay.server_close()
        accepted = len(submitted_times(run_dir))
    times = sorted(relay.arrivals)
    if accepted != len(times):
        raise RuntimeError(f"the relay saw {len(times)} calls, the ledger has {accepted}")
    steady_times = [at for at in times if at >= times[0] + SLOW_START_S]
    achieved = rate_of(steady_times)
    whole_run = rate_of(times)
    busiest = busiest_second(times)
    print(
        f"  {len(times)} calls over {times[-1] - times[0]:.3f} s: {whole_run:.3f}/s; "
        f"{achieved:.3f}/s after the slow start",
        flush=True,
    )
    return [
        Figure(
            f"--rate {RATE}: achieved rate after the slow start",
            achieved,
            "calls/s",
            f"{RATE * 0.97:g}-{RATE}/s",
            RATE * 0.97 <= achieved <= RATE * (1 + RATE_TOLERANCE),
            baseline=RATE,
            ratio=achieved / RATE,
            note=f"calls from {SLOW_START_S} s after the first, timed on arrival at the endpoint "
            f"(to within {RATE_TOLERANCE:.1%})",
        ),
        Figure(
            f"--rate {RATE}: achieved rate, whole run",
            whole_run,
            "calls/s",
            baseline=RATE,
            ratio=whole_run / RATE,
            note=f"{items:,} items over {seconds} s, the slow start included",
        ),
        Figure(
            f"--rate {RATE}: busiest 1 s window",
            busiest,
            "calls",
            f"<= {RATE + 1}",
            busiest <= RATE + 1,
            baseline=RATE,
            ratio=busiest / RATE,
            note="most calls arriving in any window [t, t + 1 s)",
        ),
    ]
