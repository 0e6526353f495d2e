"""What arrives over NATS is hostile until checked: results on the stream, jobs, configs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from nats.aio.msg import Msg
from prometheus_client import CollectorRegistry

from collector.artifacts import ArtifactStore, RetentionLimits
from collector.bus import Bus, BusSettings, ResultsReader
from collector.history import RunHistory
from collector.ingest import Ingestor
from collector.metrics import render_agents
from collector.state import CollectorState
from probes.bus import contract as c
from probes.result import to_dict
from tests.documents import heartbeat, result
from tests.test_config import problems_of


def message(subject: str, data: bytes) -> Msg:
    """A message as the results consumer delivers it (the reply subject carries its stamp)."""
    stamp = time.time_ns()
    reply = f"$JS.ACK.{c.RESULTS_STREAM}.collector-t.1.1.1.{stamp}.0"
    return Msg(_client=None, subject=subject, reply=reply, data=data)  # type: ignore[arg-type]


@pytest.fixture
async def reader(tmp_path: Path) -> Any:
    registry = CollectorRegistry()
    history = RunHistory(tmp_path / "runs.sqlite3", 100, registry)
    await history.open()
    state = CollectorState()
    ingestor = Ingestor(state, history, registry)
    bus = Bus(BusSettings("nats://127.0.0.1:9"), nc=_NoClient())  # type: ignore[arg-type]
    store = ArtifactStore(tmp_path / "artifacts", RetentionLimits())
    yield ResultsReader(bus, ingestor, store), state, registry
    await history.close()


class _NoClient:
    """The reader's own checks need no connection."""

    def jetstream(self) -> None:
        return None


def good(run_id: str) -> bytes:
    document = to_dict(result(run_id, location="paris"))
    return json.dumps(document).encode()


def refused(registry: CollectorRegistry, what: str, reason: str) -> float:
    value = registry.get_sample_value(
        "parcours_collector_refused_total", {"what": what, "reason": reason}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "invalid"),
        (b'{"location": "paris", "x": NaN}', "invalid"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid"),
        (b'{"location": "paris", "journey": "\\ud800"}', "invalid"),
        (b"\xff\xfe not utf-8", "invalid"),
        (good("forged").replace(b'"paris"', b'"lyon"'), "location_mismatch"),
    ],
    ids=["broken", "nan", "nested", "surrogate", "bytes", "other-location"],
)
async def test_a_hostile_result_on_the_stream_is_refused_counted_and_the_next_one_kept(
    reader: Any, data: bytes, reason: str
) -> None:
    results, state, registry = reader

    results.handle(message(c.results_subject("paris"), data))
    results.handle(message(c.results_subject("paris"), good("after")))

    assert refused(registry, "result", reason) == 1
    # Only the good one is kept: one series, in paris, whose latest run is it.
    assert [s.latest.run_id for s in state.series.values()] == ["after"]
    assert [key[1] for key in state.series] == ["paris"]


async def test_a_result_dated_ten_years_ahead_on_the_stream_is_refused(reader: Any) -> None:
    results, state, registry = reader
    ahead = to_dict(result("future", location="paris"))
    ahead["started_at"] = time.time() + 10 * 365 * 86400
    ahead["finished_at"] = ahead["started_at"] + 2.5

    results.handle(message(c.results_subject("paris"), json.dumps(ahead).encode()))

    assert refused(registry, "result", "clock_skew") == 1
    assert state.series == {}


def beat(**changes: Any) -> bytes:
    """A heartbeat from a paris agent, sent now unless ``changes`` say otherwise."""
    return json.dumps(heartbeat(**{"sent_at": time.time(), **changes})).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "invalid"),
        (beat().replace(b'"lag_sum": 0.3', b'"lag_sum": NaN'), "invalid"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid"),
        (beat(agent="\ud800"), "invalid"),
        (beat(agent="agent\nforged"), "invalid"),
        (beat(lag_buckets={"abc": 1}), "invalid"),
        (beat(running=-1), "invalid"),
        (beat(sent_at=time.time() + 10 * 365 * 86400), "clock_skew"),
        (beat(location="lyon"), "location_mismatch"),
    ],
    ids=[
        "broken",
        "nan",
        "nested",
        "surrogate",
        "control-character",
        "lag-bucket-abc",
        "negative-count",
        "ten-years-ahead",
        "other-location",
    ],
)
async def test_a_hostile_heartbeat_on_the_stream_is_refused_counted_and_the_next_one_kept(
    reader: Any, data: bytes, reason: str
) -> None:
    results, state, registry = reader

    results.handle(message(c.heartbeats_subject("paris"), data))
    # A quote and a backslash are characters a name may hold: kept, and exported escaped.
    results.handle(message(c.heartbeats_subject("paris"), beat(agent='agent "after" \\')))

    assert refused(registry, "heartbeat", reason) == 1
    assert list(state.agents) == [('agent "after" \\', "paris")]
    seen = [(agent.heartbeat, agent.received_at) for agent in state.agents.values()]
    assert 'agent="agent \\"after\\" \\\\"' in render_agents(seen, time.time())


@pytest.mark.parametrize(
    "data",
    [b"", b"{}", b'{"check": 1}', b"[]", b'{"files": [[1]]}', b"\x00" * 10],
)
def test_a_malformed_job_is_a_clear_error_not_a_crash(data: bytes) -> None:
    with pytest.raises(ValueError, match="malformed job"):
        c.Job.from_bytes(data)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        *(
            (name, "locations[0]: string should match pattern")
            for name in ("ly.on", "lyon>", "*", "ly on", "x" * 65, "")
        ),
        ("\ud800", "invalid YAML"),  # a lone surrogate is refused by the YAML reader itself
    ],
)
def test_a_location_that_is_no_subject_token_is_refused_with_its_line(name: str, why: str) -> None:
    problems = problems_of(
        f"""
        journeys:
          - name: home
            base_url: http://shop.example
            locations: [{json.dumps(name)}]
            steps: [{{name: open, goto: /}}]
        """
    )

    assert len(problems) == 1
    assert problems[0].startswith("shop.yaml:4: ")
    assert why in problems[0]
