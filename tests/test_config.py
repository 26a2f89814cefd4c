"""Options: one declaration feeds the CLI, SQUALL_* variables, the TOML file and the README."""

from __future__ import annotations

import pathlib

import pytest

from squall import config
from squall.cli import build_parser, load_config

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_defaults_are_safe() -> None:
    cfg = config.Config()
    http = cfg.http
    assert http.timeout_keep_alive and http.timeout_request_header and http.timeout_request_body
    assert http.limit_request_line and http.limit_request_head and http.limit_request_headers
    assert http.limit_concurrency and cfg.runtime.timeout_graceful_shutdown


def test_every_option_has_a_cli_flag() -> None:
    parser_flags = {s for action in build_parser()._actions for s in action.option_strings}
    for option in config.options():
        if option.meta["kind"] != "positional":
            assert option.flag in parser_flags


def test_readme_documents_every_flag() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        o.flag for o in config.options() if o.meta["kind"] != "positional" and f"`{o.flag}" not in readme
    ]
    assert not missing, f"README lacks {missing}; regenerate with scripts/flags_table.py"


def test_precedence_file_env_cli(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "squall.toml"
    toml.write_text('port = 7000\ntimeout-keep-alive = 9\nheader = ["x-a: 1"]\naccess-log = false\n')
    monkeypatch.setenv("SQUALL_PORT", "7001")
    cfg, _ = load_config(["app:app", "--config", str(toml), "--timeout-keep-alive", "3"])
    assert cfg.socket.port == 7001
    assert cfg.http.timeout_keep_alive == 3.0
    assert cfg.http.header == [("x-a", "1")]
    assert cfg.runtime.access_log is False
    assert cfg.app.app == "app:app"


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--timeout-keep-alive", "-1"], "--timeout-keep-alive"),
        (["--loop", "nope"], "--loop"),
        (["--limit-concurrency", "0"], "--limit-concurrency"),
        (["--header", "novalue"], "--header"),
    ],
)
def test_bad_flag_is_one_line_naming_it(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_config(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


def test_bad_env_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SQUALL_ACCESS_LOG", "maybe")
    with pytest.raises(SystemExit):
        load_config([])
    assert "SQUALL_ACCESS_LOG" in capsys.readouterr().err


def test_off_disables_a_limit() -> None:
    cfg, _ = load_config(["--limit-request-headers", "off", "--timeout-request-body", "none"])
    assert cfg.http.limit_request_headers is None and cfg.http.timeout_request_body is None


def test_workers_auto() -> None:
    cfg, _ = load_config(["--workers", "auto"])
    assert cfg.process.workers >= 1


@pytest.mark.parametrize(
    ("process", "supervised"),
    [
        ({}, False),
        ({"pid_file": "/run/squall.pid", "timeout_worker_healthcheck": 3.0}, False),
        ({"workers": 2}, True),
        ({"supervisor": True}, True),
        ({"reload": True}, True),
        ({"limit_max_requests": 1000}, True),
        ({"limit_max_memory": 512}, True),
    ],
)
def test_what_needs_a_supervisor(process: dict[str, object], supervised: bool) -> None:
    assert config.ProcessSettings(**process).supervised is supervised  # type: ignore[arg-type]
