"""The endpoint's CloudWatch metrics: the GetMetricData request (checked against botocore's
cloudwatch model by its Stubber), what is read from the answer, and the watch that adds the
load to each progress snapshot and says when the endpoint scales up from zero. Against moto's
CloudWatch, fed by the emulator: tests/emulator/test_metrics.py and
tests/integration/test_endpoint_load.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from bulkinvoke.calls.metrics import (
    BACKLOG_WINDOW,
    LATENCY_WINDOW,
    MetricsUnavailable,
    read_endpoint_load,
)
from bulkinvoke.cli.progress import describe, endpoint_load
from bulkinvoke.events import EndpointLoad, Notice, NoticeLevel, Progress, Subscribers
from bulkinvoke.run.endpoint_load import LoadWatch
from bulkinvoke.states import State

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def _cloudwatch() -> tuple[Any, Stubber]:
    client = boto3.client(
        "cloudwatch", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s"
    )
    return client, Stubber(client)


def _result(query_id: str, *points: tuple[timedelta, float]) -> dict[str, Any]:
    return {
        "Id": query_id,
        "Timestamps": [NOW - age for age, _ in points],
        "Values": [value for _, value in points],
        "StatusCode": "Complete",
    }


def test_one_call_reads_the_newest_backlog_figures() -> None:
    client, stubber = _cloudwatch()
    minute = timedelta(minutes=1)
    answer = {
        "MetricDataResults": [
            _result("backlog", (2 * minute, 40.0), (minute, 30.0)),
            _result("per_instance", (minute, 15.0)),
            _result("without_capacity", (minute, 0.0)),
        ]
    }
    expected = {
        "MetricDataQueries": ANY,
        "StartTime": NOW - BACKLOG_WINDOW,
        "EndTime": NOW,
        "ScanBy": "TimestampDescending",
    }
    stubber.add_response("get_metric_data", answer, expected)
    with stubber:
        load = read_endpoint_load(client, "ep", now=NOW)
    assert load == EndpointLoad(30.0, 15.0, False, None)
    assert not load.scaling_up and load.shows_capacity


def test_the_queries_name_the_metrics_sagemaker_publishes() -> None:
    client, stubber = _cloudwatch()
    seen: list[dict[str, Any]] = []
    client.meta.events.register(
        "before-parameter-build.cloudwatch.GetMetricData",
        lambda params, **_: seen.extend(params["MetricDataQueries"]),
    )
    stubber.add_response("get_metric_data", {"MetricDataResults": []})
    with stubber:
        read_endpoint_load(client, "ep", now=NOW, latency_of=("AllTraffic",))
    metrics = {query["MetricStat"]["Metric"]["MetricName"]: query["MetricStat"] for query in seen}
    assert set(metrics) == {
        "ApproximateBacklogSize",
        "ApproximateBacklogSizePerInstance",
        "HasBacklogWithoutCapacity",
        "ModelLatency",
    }
    assert all(stat["Metric"]["Namespace"] == "AWS/SageMaker" for stat in metrics.values())
    latency = metrics["ModelLatency"]
    assert latency["Period"] == LATENCY_WINDOW.total_seconds()
    assert {d["Name"] for d in latency["Metric"]["Dimensions"]} == {"EndpointName", "VariantName"}
    assert metrics["HasBacklogWithoutCapacity"]["Stat"] == "Maximum"


def test_stale_backlog_is_no_figure_and_latency_is_in_seconds() -> None:
    client, stubber = _cloudwatch()
    answer = {
        "MetricDataResults": [
            _result("backlog", (BACKLOG_WINDOW + timedelta(minutes=1), 9.0)),
            _result("without_capacity", (timedelta(minutes=1), 1.0)),
            _result("model_latency_0", (timedelta(hours=2), 200_000.0)),
            _result("model_latency_1", (timedelta(hours=1), 300_000.0)),
        ]
    }
    stubber.add_response("get_metric_data", answer)
    with stubber:
        load = read_endpoint_load(client, "ep", now=NOW, latency_of=("blue", "green"))
    assert load.backlog is None and load.without_capacity is True
    assert load.model_latency_s == pytest.approx(0.25)
    assert load.scaling_up


def test_no_permission_is_metrics_unavailable() -> None:
    client, stubber = _cloudwatch()
    stubber.add_client_error("get_metric_data", "AccessDenied", "not authorized")
    with stubber, pytest.raises(MetricsUnavailable, match="AccessDenied"):
        read_endpoint_load(client, "ep", now=NOW)


class _Heard:
    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self.progress: list[Progress] = []

    def on_progress(self, progress: Progress) -> None:
        self.progress.append(progress)

    def on_notice(self, notice: Notice) -> None:
        self.notices.append(notice)


def _progress() -> Progress:
    return Progress(10, {}, 0, 0, None, None, 0, 0, 1.0)


def test_the_watch_says_once_when_the_endpoint_scales_up_and_when_it_has_capacity() -> None:
    readings: list[EndpointLoad | Exception] = [
        EndpointLoad(backlog=0.0, without_capacity=False),
        EndpointLoad(backlog=12.0, without_capacity=True),
        EndpointLoad(backlog=12.0, without_capacity=True),
        MetricsUnavailable("GetMetricData: Throttling"),
        MetricsUnavailable("GetMetricData: Throttling"),
        EndpointLoad(backlog=3.0, backlog_per_instance=3.0, without_capacity=False),
    ]

    def read() -> EndpointLoad:
        reading = readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return reading

    heard = _Heard()
    watch = LoadWatch("ep", read, 60.0, Subscribers([heard]), described_instances=1)
    said = []
    levels: list[NoticeLevel] = []
    for _ in range(6):
        watch.read_once()
        watch.subscribers.progress(_progress())
        said.append([n.message for n in heard.notices])
        levels.extend(n.level for n in heard.notices)
        heard.notices.clear()
    assert [len(s) for s in said] == [0, 1, 0, 1, 0, 1]
    assert "12 requests queued and no instance" in said[1][0]
    assert "scaling up" in said[1][0]
    assert "metrics were not read (GetMetricData: Throttling)" in said[3][0]
    assert said[5] == ["endpoint ep has an instance taking requests"]
    # Scaling is news, not a problem (--quiet drops it); unreadable metrics are a warning.
    assert levels == [NoticeLevel.INFO, NoticeLevel.WARNING, NoticeLevel.INFO]
    loads = [p.endpoint for p in heard.progress]
    assert loads[1] == EndpointLoad(12.0, None, True, None)
    # A failed read keeps the last figures rather than showing none.
    assert loads[3] == loads[2]
    assert heard.progress[-1].endpoint == EndpointLoad(3.0, 3.0, False, None)


def test_an_endpoint_described_with_no_instance_shows_as_scaling_up_before_any_figure() -> None:
    heard = _Heard()
    watch = LoadWatch("ep", lambda: EndpointLoad(), 60.0, Subscribers([heard]), 0)
    watch.subscribers.progress(_progress())
    (progress,) = heard.progress
    assert endpoint_load(progress) == "endpoint scaling up from 0 instances"
    watch.read_once()  # nothing published yet: still the description's word
    assert watch.latest().scaling_up and not heard.notices


def test_an_endpoint_described_with_no_instance_is_at_zero_until_one_is_seen_at_work() -> None:
    readings = [
        EndpointLoad(backlog=0.0, without_capacity=False),  # nothing sent yet
        EndpointLoad(backlog=5.0, without_capacity=False),  # an instance works the queue off
        EndpointLoad(backlog=0.0, without_capacity=False),  # and is done
    ]
    heard = _Heard()
    watch = LoadWatch("ep", lambda: readings.pop(0), 60.0, Subscribers([heard]), 0)
    scaling = []
    for _ in range(3):
        watch.read_once()
        scaling.append(watch.latest().scaling_up)
    assert scaling == [True, False, False]
    assert [n.message for n in heard.notices] == ["endpoint ep has an instance taking requests"]


def test_results_show_an_instance_at_work_whatever_a_minute_old_figure_says() -> None:
    heard = _Heard()
    stale = EndpointLoad(backlog=4.0, without_capacity=True)
    watch = LoadWatch("ep", lambda: stale, 60.0, Subscribers([heard]), 0)
    watch.read_once()
    done_before = Progress(10, {State.SUCCEEDED: 3}, 0, 0, None, None, 0, 0, 1.0)
    watch.subscribers.progress(done_before)  # results of an earlier session prove nothing
    assert heard.progress[-1].endpoint is not None and heard.progress[-1].endpoint.scaling_up
    one_more = Progress(10, {State.SUCCEEDED: 4}, 0, 0, None, None, 0, 0, 2.0)
    watch.subscribers.progress(one_more)
    assert heard.progress[-1].endpoint is not None
    assert not heard.progress[-1].endpoint.scaling_up
    watch.read_once()  # the figure has not caught up, the results have
    assert not watch.latest().scaling_up
    assert [n.message for n in heard.notices] == ["endpoint ep has an instance taking requests"]


def test_the_progress_line_shows_the_backlog() -> None:
    plain = _progress()
    assert endpoint_load(plain) is None and "endpoint" not in describe(plain)
    busy = Progress(10, {}, 0, 0, None, None, 0, 0, 1.0, endpoint=EndpointLoad(240.0, 60.0))
    assert describe(busy).endswith(", endpoint backlog 240 (60.0 per instance)")
    zero = Progress(10, {}, 0, 0, None, None, 0, 0, 1.0, endpoint=EndpointLoad(7.0, 7.0, True))
    assert endpoint_load(zero) == "endpoint scaling up from 0 instances, 7 queued"
