"""What the benchmarks share: the emulator in a child process, client processes measured from
outside (wall time, CPU, peak memory), figures and the description of the machine.

The emulator always runs in a process of its own, so that the CPU a client uses can be told
apart from the emulator's; both share the machine's cores, which is said with every result.
"""

from __future__ import annotations

import bisect
import importlib.metadata
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BULKINVOKE = str(Path(PYTHON).parent / "bulkinvoke")
AWS_CLI = str(Path(PYTHON).parent / "aws")
ENDPOINT = "bench"
OUTPUT_PATH = "s3://bench-out/out"
FAILURE_PATH = "s3://bench-out/fail"
INPUT_BUCKET = "bench-in"
# Whatever the user's shell holds, no real credential or profile reaches a benchmark client.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEKEYFORBENCH1",
    "AWS_SECRET_ACCESS_KEY": "fake/secret/for/benchmarks/only/01234567",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Figure:
    """One line of the results table; ``passed`` is None for a figure without a target."""

    name: str
    value: float
    unit: str
    target: str = ""
    passed: bool | None = None
    baseline: float | None = None
    ratio: float | None = None
    note: str = ""


def ratio_figure(
    name: str,
    value: float,
    baseline: float,
    unit: str,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    note: str = "",
) -> Figure:
    """A figure judged by its ratio to a baseline measured in the same run."""
    ratio = value / baseline if baseline else float("inf")
    if at_least is not None:
        target, passed = f">= {at_least:g}x", ratio >= at_least
    elif at_most is not None:
        target, passed = f"<= {at_most:g}x", ratio <= at_most
    else:
        target, passed = "", None
    return Figure(name, value, unit, target, passed, baseline, ratio, note)


def client_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS)
    env.update(extra)
    return env


class Emulator:
    """``bulkinvoke emulator`` in a child process: latency zero, one endpoint, ``workers``
    workers; stopped on exit. ``capacity`` makes it throttle above that many calls a second."""

    def __init__(self, *, workers: int = 16, capacity: float | None = None) -> None:
        command = [
            BULKINVOKE,
            "emulator",
            "--endpoint",
            f"{ENDPOINT}={OUTPUT_PATH},failure={FAILURE_PATH}",
            "--workers",
            str(workers),
            "--latency",
            "0",
            "--credentials",
            f"{FAKE_CREDENTIALS['AWS_ACCESS_KEY_ID']}:{FAKE_CREDENTIALS['AWS_SECRET_ACCESS_KEY']}",
        ]
        if capacity is not None:
            command += ["--capacity", str(capacity)]
        # Its stderr, shown if it fails to start; closed by stop().
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=client_env({}),
        )
        assert self.process.stdout is not None
        exported: dict[str, str] = {}
        # The command prints the environment to use last, AWS_DEFAULT_REGION closing it.
        while "AWS_DEFAULT_REGION" not in exported:
            line = self.process.stdout.readline()
            if not line:
                self._log.seek(0)
                log = self._log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the emulator did not start:\n{log}")
            name, equals, value = line.removeprefix("export ").strip().partition("=")
            if line.startswith("export ") and equals:
                exported[name] = value
        self.s3_url = exported["AWS_ENDPOINT_URL_S3"]
        self.sagemaker_url = exported["AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"]

    def __enter__(self) -> Emulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """The environment of a client process pointed at this emulator."""
        return client_env(
            {
                "AWS_ENDPOINT_URL_S3": self.s3_url,
                "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.sagemaker_url,
                "AWS_ENDPOINT_URL_SAGEMAKER": self.sagemaker_url,
                # moto serves CloudWatch (the endpoint metrics) beside S3.
                "AWS_ENDPOINT_URL_CLOUDWATCH": self.s3_url,
            }
        )

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.sagemaker_url}/_emulator/stats", timeout=10) as r:
            return json.load(r)

    def configure(self, **changes: Any) -> None:
        request = urllib.request.Request(
            f"{self.sagemaker_url}/_emulator/config",
            data=json.dumps(changes).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def s3(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(max_pool_connections=32),
        )

    def ceiling(self, seconds: float = 3.0, threads: int = 16) -> float:
        """Accepted calls per second from a raw keep-alive HTTP client in another process: the
        most the emulator can take on this machine, with no botocore in the way."""
        command = [PYTHON, "-m", "tests.emulator.loadgen", "--url", self.sagemaker_url]
        command += ["--endpoint", ENDPOINT, "--input", f"s3://{INPUT_BUCKET}/ceiling.json"]
        command += ["--seconds", str(seconds), "--threads", str(threads)]
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, check=True, env=self.env()
        )
        match = re.search(r"rate=(\d+)/s", done.stdout)
        if match is None:
            raise RuntimeError(f"unexpected load generator output: {done.stdout!r}")
        return float(match.group(1))

    def warm_up(self) -> None:
        """A second of load first: its workers make their boto3 clients on their first jobs,
        which holds its GIL for a second or two that no figure should include."""
        self.ceiling(seconds=1.0, threads=4)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                # Its workers may be busy with a backlog nobody needs any more.
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as stat:
        fields = stat.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def peak_rss_kib(pid: int) -> int:
    """VmHWM of a live process. Not ru_maxrss: after fork and exec that starts at the parent's
    peak, so a child of a large benchmark process would look as large as its parent."""
    with open(f"/proc/{pid}/status", "rb") as status:
        for line in status:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1])
    return 0


@dataclass
class Measured:
    """A finished child process, measured from outside."""

    returncode: int
    wall: float
    cpu: float  # user + system seconds of the whole process
    max_rss_mib: float  # the last VmHWM seen, sampled every 20 ms (0 if it ended before that)
    stdout: str
    stderr: str
    # (time.time(), CPU seconds so far) every few tens of milliseconds while it ran.
    samples: list[tuple[float, float]] = field(default_factory=list)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the process used between two ``time.time()`` instants (interpolated)."""
        return self._cpu_at(end) - self._cpu_at(start)

    def _cpu_at(self, when: float) -> float:
        times = [t for t, _ in self.samples]
        i = bisect.bisect_left(times, when)
        if i == 0:
            return self.samples[0][1]
        if i == len(times):
            return self.samples[-1][1]
        (t0, c0), (t1, c1) = self.samples[i - 1], self.samples[i]
        return c0 + (c1 - c0) * (when - t0) / (t1 - t0)


def run_measured(
    command: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    sample_cpu: bool = False,
    timeout: float = 900,
    ok: Sequence[int] = (0,),
) -> Measured:
    """Run ``command`` to the end, measured: CPU from wait4, peak RSS and (with ``sample_cpu``)
    CPU over time from /proc while it runs."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        samples: list[tuple[float, float]] = []
        peak = [0]
        sampler = threading.Thread(target=_sample, args=(process.pid, samples, peak), daemon=True)
        sampler.start()
        killer = threading.Timer(timeout, process.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            killer.cancel()
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.join()
        out.seek(0)
        err.seek(0)
        measured = Measured(
            process.returncode,
            wall,
            usage.ru_utime + usage.ru_stime,
            peak[0] / 1024,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            samples if sample_cpu else [],
        )
    if measured.returncode not in ok:
        raise RuntimeError(
            f"{' '.join(command[:3])}... exited with {measured.returncode}:\n"
            f"{measured.stderr[-3000:]}{measured.stdout[-1000:]}"
        )
    return measured


def _sample(pid: int, samples: list[tuple[float, float]], peak: list[int]) -> None:
    while True:
        try:
            cpu = process_cpu(pid)
            # A zombie has no memory left to report: keep the last figure it gave.
            peak[0] = max(peak[0], peak_rss_kib(pid))
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return  # reaped
        samples.append((time.time(), cpu))
        time.sleep(0.02)


def steady_window(
    times: Sequence[float], low: float = 0.1, high: float = 0.9
) -> tuple[float, float, int]:
    """The span between the ``low`` and ``high`` quantiles of sorted event times, and the
    number of events in it: the steady state, without start-up and the final drain."""
    first, last = int(len(times) * low), int(len(times) * high) - 1
    return times[first], times[last], last - first


def write_manifest(path: Path, items: int, prefix: str) -> Path:
    """A CSV manifest of ``items`` distinct input locations (the objects need not exist: a
    --no-wait benchmark never waits for their results)."""
    with path.open("w") as out:
        out.write("input_location\n")
        out.writelines(f"s3://{INPUT_BUCKET}/{prefix}/{i:09d}.json\n" for i in range(items))
    return path


def submitted_times(run_dir: Path) -> list[float]:
    """Sorted ``submitted_at`` of every accepted attempt of a run, in seconds (ms resolution)."""
    import pyarrow as pa

    from bulkinvoke.ledger.store import Ledger

    with Ledger.open(run_dir, writable=False) as ledger:
        column = ledger.attempts(["submitted_at"]).column("submitted_at")
    millis = column.drop_null().cast(pa.int64()).to_pylist()
    return sorted(ms / 1000 for ms in millis)


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "cpus (nproc)": str(len(os.sched_getaffinity(0))),
        "cpu model": model,
        "memory": f"{total_kib / 2**20:.1f} GiB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "boto3 / botocore": f"{_version('boto3')} / {_version('botocore')}",
        "load average at start": load,
    }


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
