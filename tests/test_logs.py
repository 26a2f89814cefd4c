"""squall.logs in one process: the access record's shape, the formatters, uvicorn's logger names."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from squall import logs
from squall.config import RuntimeSettings
from squall.observe.access import emit

NAMES = ("squall.error", "squall.access", "uvicorn", "uvicorn.error", "uvicorn.access")


class Streams:
    """What squall wrote to stdout and stderr (through pytest's capture) since the last look."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.out = self.err = ""

    def read(self) -> Streams:
        captured = self.capsys.readouterr()
        self.out += captured.out
        self.err += captured.err
        return self


@pytest.fixture
def streams(capsys: pytest.CaptureFixture[str]) -> Iterator[Streams]:
    """pytest's captured stdout/stderr while squall's loggers are configured; loggers restored after."""
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for name in NAMES
        for lg in [logging.getLogger(name)]
    }
    yield Streams(capsys)
    for name, (handlers, level, propagate, disabled) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers, lg.propagate, lg.disabled = handlers, propagate, disabled
        lg.setLevel(level)


def access() -> None:
    emit("127.0.0.1:5000", "GET", "/p?q=1", "1.1", 404, 12, 3.25, {"ended": "completed"})


def test_access_record_shape_and_default_line(streams: Streams) -> None:
    records: list[logging.LogRecord] = []
    logs.configure(RuntimeSettings())
    logs.access_log.addFilter(lambda record: records.append(record) or True)
    access()
    assert streams.read().err == ""
    assert streams.read().out.rstrip().endswith(' INFO 127.0.0.1:5000 - "GET /p?q=1 HTTP/1.1" 404 12 3.2ms')
    (record,) = records
    assert record.args == ("127.0.0.1:5000", "GET", "/p?q=1", "1.1", 404)  # uvicorn's five
    assert record.getMessage() == '127.0.0.1:5000 - "GET /p?q=1 HTTP/1.1" 404'
    assert (record.client_addr, record.method, record.path, record.status) == (
        "127.0.0.1:5000",
        "GET",
        "/p?q=1",
        404,
    )
    assert (record.http_version, record.response_bytes, record.duration_ms) == ("1.1", 12, 3.25)


def test_uvicorns_access_formatter_formats_squalls_record(streams: Streams) -> None:
    from uvicorn.logging import AccessFormatter

    logs.configure(RuntimeSettings())
    logs.access_log.handlers[0].setFormatter(
        AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s')
    )
    access()
    assert streams.read().out == '127.0.0.1:5000 "GET /p?q=1 HTTP/1.1" 404 Not Found\n'


@pytest.mark.parametrize(
    ("args", "line"),
    [(("a", "b", "c"), "- [a b c] 0"), (("h:1", "GET", "/", "1.1", "200"), "h:1 [GET / HTTP/1.1] 200")],
    ids=["three-args", "uvicorn-shaped"],
)
def test_squalls_access_formatter_takes_a_foreign_record(args: tuple[str, ...], line: str) -> None:
    formatter = logs.AccessFormatter("%(client_addr)s [%(request_line)s] %(status)d", use_colors=False)
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, " ".join(["%s"] * len(args)), args, None
    )
    if len(args) == 3:
        line = line.replace("[a b c]", f"[{record.getMessage()}]")
    assert formatter.format(record) == line


def test_uvicorn_style_fields_and_colours() -> None:
    formatter = logs.AccessFormatter("%(levelprefix)s%(status_code)s", use_colors=True)
    record = logging.LogRecord("squall.access", logging.INFO, __file__, 1, "x", None, None)
    record.__dict__.update(request_line="GET / HTTP/1.1", status=200, client_addr="-")
    assert formatter.format(record) == "\x1b[32mINFO\x1b[0m:    \x1b[32m200 OK\x1b[0m"
    assert record.levelname == "INFO"  # another handler still sees the plain record


def test_an_app_logging_to_uvicorn_names_reaches_squalls_logs(
    streams: Streams,
) -> None:
    logs.configure(RuntimeSettings())
    logging.getLogger("uvicorn.error").info("from the app")
    logging.getLogger("uvicorn").debug("not at info")
    logging.getLogger("uvicorn.access").info("an access line of its own")
    assert streams.read().err.count("\n") == 1 and " INFO from the app" in streams.read().err
    assert "an access line of its own" in streams.read().out


def test_log_level_and_no_access_log(streams: Streams) -> None:
    logs.configure(RuntimeSettings(log_level="warning", access_log=False))
    logs.error_log.info("hidden")
    logs.error_log.warning("shown")
    access()
    assert "hidden" not in streams.read().err and "shown" in streams.read().err
    assert streams.read().out == ""


def test_without_uvicorn_its_formatters_stand_for_squalls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streams: Streams
) -> None:
    real = logs.importlib.util.find_spec
    monkeypatch.setattr(
        logs.importlib.util, "find_spec", lambda name: None if name == "uvicorn" else real(name)
    )
    config = tmp_path / "log.json"
    config.write_text(
        '{"version": 1, "disable_existing_loggers": false,'
        ' "formatters": {"a": {"()": "uvicorn.logging.AccessFormatter", "fmt": "A %(status_code)s"}},'
        ' "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "a", "stream": "ext://sys.stdout"}},'
        ' "loggers": {"uvicorn.access": {"handlers": ["h"], "level": "INFO", "propagate": false}}}'
    )
    logs.configure(RuntimeSettings(log_config=str(config)), hints=True)
    access()
    assert streams.read().out == "A 404 Not Found\n"
    notes = streams.read().err.splitlines()
    assert len(notes) == 2
    assert "uvicorn.logging.AccessFormatter stands for squall.logs.AccessFormatter" in notes[0]
    assert "configures uvicorn.access" in notes[1]


def test_a_missing_yaml_parser_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, streams: Streams
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)
    config = tmp_path / "log.yml"
    config.write_text("version: 1\n")
    with pytest.raises(logs.LogConfigError, match=r"needs PyYAML: pip install 'squall\[yaml\]'"):
        logs.configure(RuntimeSettings(log_config=str(config)))
