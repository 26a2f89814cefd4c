"""Events compare by value and show their fields, compiled or pure Python (tests compare them)."""

from __future__ import annotations

from squall.events import Body, Data, EndBody, Request, Response, StreamReset


def test_events_compare_every_field() -> None:
    request = Request(1, "GET", b"/", b"", "1.1", [(b"host", b"h")])
    assert request == Request(1, "GET", b"/", b"", "1.1", [(b"host", b"h")])
    assert request != Request(2, "GET", b"/", b"", "1.1", [(b"host", b"h")])
    assert request != Request(1, "POST", b"/", b"", "1.1", [(b"host", b"h")])
    assert request != Request(1, "GET", b"/", b"", "1.0", [(b"host", b"h")])
    assert request != Request(1, "GET", b"/", b"", "1.1", [(b"host", b"x")])
    assert Data(1, b"a", True) != Data(1, b"a", False)
    assert Body(1, b"a") != Body(1, b"b")
    assert EndBody(1) == EndBody(1) != EndBody(2)
    assert EndBody(1) != Body(1, b"")
    assert StreamReset(1, 8) != StreamReset(1, 0)


def test_events_show_their_fields() -> None:
    assert repr(Response(3, 200, [])) == "Response(stream_id=3, status=200, headers=[])"
    assert "http_version='1.0'" in repr(Request(1, "GET", b"/", b"", "1.0", []))
