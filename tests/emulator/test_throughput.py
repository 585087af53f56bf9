"""Accept-path throughput from a raw keep-alive client: printed, not asserted (shared CI)."""

from __future__ import annotations

from botocore.client import BaseClient

from bulkinvoke.emulator import EmulatorConfig, EndpointSpec, LocalStack, start_local_stack
from tests.emulator.conftest import CREDENTIALS, INPUT_BUCKET
from tests.emulator.loadgen import run_load


def test_throughput_smoke(stack: LocalStack, s3: BaseClient) -> None:
    # A stack of its own on the suite's moto, so its backlog is dropped at stop, not drained.
    endpoints = [EndpointSpec("bench", "s3://emu-out/bench")]
    config = EmulatorConfig(credentials=CREDENTIALS)
    with start_local_stack(endpoints, config, s3_url=stack.s3_url) as bench:
        accepted, other, rate = run_load(
            bench.sagemaker_url, "bench", f"s3://{INPUT_BUCKET}/hello.txt", seconds=2.0, threads=4
        )
        assert bench.stats()["accepted"] == accepted
    print(f"\naccepted {accepted} calls, {rate:.0f}/s (client in the same process)")
    assert accepted > 0
    assert other == 0
