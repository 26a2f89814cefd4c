"""Unit tests of squall/observe/: the metric slots, the exposition, escaping, the JSON formatter."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from squall import config
from squall.observe import metrics
from squall.observe.access import JSONFormatter, escape, request_id


def test_the_slot_constants_match_the_label_tuples() -> None:
    assert len(metrics.BUCKETS) + 1 == metrics._NB
    assert len(metrics.PROTOCOLS) == metrics._NP
    assert len(metrics.STATUS_CLASSES) == metrics._NC
    assert metrics.METHODS[metrics._OTHER] == "other"


def test_merged_snapshots_render_as_valid_exposition() -> None:
    one, two = metrics.Metrics(), metrics.Metrics()
    one.request("GET", 200, "1.1", 0.0005, 0, 11)
    one.request("PATCH", 404, "2", 0.3, 5, 9)
    two.request("BREW", 0, "1.0", 100.0, 0, 0)
    two.reject("431")
    two.http2_frames([0] * 8 + [2] + [0] * 6, [1] + [0] * 14, [0] * 11 + [1] + [0] * 3)
    snaps = [one.snapshot(in_flight=1, connections={"HTTP/1": 2}), two.snapshot(in_flight=0, connections={})]
    retired = metrics.merge([two.snapshot()])
    text = metrics.render(metrics.merge(snaps, retired), snaps, {"workers": 2, "restarts": {"crash": 1}})
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    get = lambda name, **labels: samples[(name, tuple(sorted(labels.items())))]  # noqa: E731
    assert get("squall_http_requests_total", method="GET", status_class="2xx", protocol="HTTP/1.1") == 1
    assert get("squall_http_requests_total", method="PATCH", status_class="4xx", protocol="HTTP/2") == 1
    assert get("squall_http_requests_total", method="other", status_class="none", protocol="HTTP/1.0") == 2
    assert get("squall_http_request_duration_seconds_bucket", protocol="HTTP/1.1", le="0.001") == 1
    assert get("squall_http_request_duration_seconds_bucket", protocol="HTTP/1.0", le="60.0") == 0
    assert get("squall_http_request_duration_seconds_bucket", protocol="HTTP/1.0", le="+Inf") == 2
    assert get("squall_http_rejected_total", reason="431") == 2
    assert get("squall_http2_resets_total", by="server", code="CANCEL") == 4
    assert get("squall_http2_resets_total", by="client", code="NO_ERROR") == 2
    assert get("squall_http2_goaways_total", code="ENHANCE_YOUR_CALM") == 2
    assert get("squall_http_requests_in_flight") == 1
    assert get("squall_connections_open", protocol="HTTP/1") == 2
    assert get("squall_worker_restarts_total", cause="crash") == 1


def test_escape_leaves_no_control_character_or_bare_quote() -> None:
    assert escape('a\nb"c\\d\x1b') == 'a\\x0ab\\"c\\\\d\\x1b'
    assert escape("plain /path?q=1") == "plain /path?q=1"


def test_request_id_keeps_a_token_and_replaces_anything_else() -> None:
    assert request_id([(b"x-request-id", b"abc-1")], b"x-request-id") == "abc-1"
    for bad in (b"a b", b"x" * 129, b""):
        made = request_id([(b"x-request-id", bad)], b"x-request-id")
        assert len(made) == 32 and made != bad.decode()


def test_json_formatter_writes_one_line_with_a_structured_exception() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord(
            "squall.error", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    line = JSONFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert (data["level"], data["logger"], data["message"]) == ("error", "squall.error", "failed x")
    assert data["exception"]["type"] == "ValueError" and data["exception"]["message"] == "bad\nthing"


@pytest.mark.parametrize(
    ("text", "ok"), [("%(h)s %({x-a}i)s %({HOME}e)s", True), ("%(zz)s", False), ("%(s)d", False)]
)
def test_access_format_is_checked_at_startup(text: str, ok: bool) -> None:
    if ok:
        assert config.access_format(text) == text
    else:
        with pytest.raises(ValueError):
            config.access_format(text)


def test_the_written_out_buckets_match_the_bounds() -> None:
    for index, bound in enumerate(metrics.BUCKETS):
        assert metrics._bucket(bound) == index
        assert metrics._bucket(bound * 1.0001) == index + 1
    assert metrics._bucket(0.0) == 0
