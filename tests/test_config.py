"""Options: one declaration feeds the CLI, SQUALL_* variables, the TOML file and the README."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import typing

import pytest

from squall import config
from squall.cli import REFUSED, build_parser, load_config

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
        (["--ssl-version", "3"], "--ssl-version"),
        (["--ssl-version", "16"], "--ssl-version"),
        (["--loop", "no-colon"], "--loop"),
        (["--http", "h3"], "--http"),
        (["--ws", "socketio"], "--ws"),
        (["--env-file", "/no/such/.env"], "--env-file"),
    ],
)
def test_bad_flag_is_one_line_naming_it(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_config(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err


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


# --- uvicorn's command line ----------------------------------------------------------------------

#: Flags that the compat-api branch declares (proxy headers); checked like the others once present.
OTHER_BRANCH = {"--proxy-headers", "--no-proxy-headers", "--forwarded-allow-ips"}


def uvicorn_flags() -> set[str]:
    """Every flag ``uvicorn --help`` lists (the uvicorn of the test extra)."""
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    flags = set()
    for line in result.stdout.splitlines():
        if re.match(r"\s+--", line):
            for spelled in re.findall(r"(?:^|[\s/])(--[a-z0-9][a-z0-9-]*)", line.split("  ")[1] or line):
                flags.add(spelled)
    return flags


def test_every_uvicorn_flag_is_accepted_or_refused() -> None:
    import uvicorn

    assert uvicorn.__version__.startswith("0.54."), "the test extra pins uvicorn 0.54"
    ours = {s for action in build_parser()._actions for s in action.option_strings}
    flags = uvicorn_flags()
    assert {"--host", "--reload-delay", "--limit-max-requests-jitter", "--no-use-colors"} <= flags
    missing = sorted(f for f in flags - ours - set(REFUSED) if f not in OTHER_BRANCH)
    assert not missing, f"uvicorn flags neither accepted nor refused: {missing}"


@pytest.mark.parametrize(
    ("flag", "kind"),
    [
        ("--http", "HTTPProtocolType"),
        ("--ws", "WSProtocolType"),
        ("--loop", "LoopFactoryType"),
        ("--lifespan", "LifespanType"),
        ("--interface", "InterfaceType"),
    ],
)
def test_every_uvicorn_value_is_accepted(flag: str, kind: str) -> None:
    from uvicorn import config as uvicorn_config

    for value in typing.get_args(getattr(uvicorn_config, kind)):
        load_config([flag, value])
    for level in uvicorn_config.LOG_LEVELS:
        load_config(["--log-level", level])


def test_abbreviations_are_not_guessed() -> None:
    cfg, _ = load_config(["--http", "h11", "app:app"])
    assert cfg.http.http == "h11" and cfg.http2.http2 is True and cfg.app.app == "app:app"
    cfg, _ = load_config(["--http=httptools"])
    assert cfg.http.http == "httptools"


@pytest.mark.parametrize(
    ("argv", "lines"),
    [
        (
            ["--limit-max-request", "5"],
            ["unrecognized argument --limit-max-request (did you mean --limit-max-requests?)"],
        ),
        (["--htp", "h11"], ["unrecognized argument --htp (did you mean --http?)"]),
        (["--wrokers=2", "--zzz"], ["--wrokers (did you mean --workers?)", "unrecognized argument --zzz"]),
        (
            ["--bind", "0.0.0.0:80"],
            ["argument --bind: gunicorn's and hypercorn's --bind: use --host HOST --port PORT"],
        ),
        (["-w", "4"], ["argument -w: gunicorn's and hypercorn's -w: use --workers N"]),
    ],
    ids=["close", "short", "two", "gunicorn-bind", "gunicorn-w"],
)
def test_unknown_flag_names_it_and_a_close_one(
    argv: list[str], lines: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        load_config(["app:app", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(lines), err
    for got, expected in zip(err, lines, strict=True):
        assert got.startswith("squall: error: ") and expected in got


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (["--ws-per-message-deflate", "false", "app:app"], "ws_per_message_deflate", False),
        (["--ws-per-message-deflate", "True", "app:app"], "ws_per_message_deflate", True),
        (["--access-log=no", "app:app"], "access_log", False),
        (["--reload", "app:app"], "reload", True),
        (["app:app", "--use-colors", "0"], "use_colors", False),
        (["app:app", "--no-use-colors"], "use_colors", False),
    ],
)
def test_boolean_flags_take_uvicorns_value_forms(argv: list[str], name: str, value: bool) -> None:
    cfg, _ = load_config(argv)
    option = next(o for o in config.options() if o.name == name)
    assert getattr(getattr(cfg, option.group), name) is value
    assert cfg.app.app == "app:app"


def test_bad_boolean_value_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        load_config(["--access-log=maybe"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--access-log" in err and "maybe" in err


def test_web_concurrency_is_read_as_uvicorn_reads_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    assert load_config([])[0].process.workers == 3
    assert load_config(["--workers", "2"])[0].process.workers == 2
    monkeypatch.setenv("SQUALL_WORKERS", "4")
    assert load_config([])[0].process.workers == 4
    monkeypatch.delenv("SQUALL_WORKERS")
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(SystemExit):
        load_config([])
    assert "WEB_CONCURRENCY" in capsys.readouterr().err


def test_jitter_has_uvicorns_and_gunicorns_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_config(["--limit-max-requests-jitter", "7"])[0].process.limit_max_requests_jitter == 7
    assert load_config(["--max-requests-jitter", "8"])[0].process.limit_max_requests_jitter == 8
    monkeypatch.setenv("SQUALL_MAX_REQUESTS_JITTER", "9")
    assert load_config([])[0].process.limit_max_requests_jitter == 9


def test_ssl_version_values() -> None:
    assert load_config(["--ssl-version", "17"])[0].tls.ssl_version == 17
    assert load_config(["--ssl-version", "5"])[0].tls.ssl_version == 5


def test_loop_takes_an_import_string() -> None:
    assert load_config(["--loop", "mypackage.loops:new_loop"])[0].runtime.loop == "mypackage.loops:new_loop"
    assert load_config(["--loop", "none"])[0].runtime.loop == "none"


def test_env_file_is_loaded_before_the_environment_is_read(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"
    env.write_text('export WEB_CONCURRENCY=3\nSQUALL_TEST_NAME="from file"\nSQUALL_TEST_KEPT=file\n')
    monkeypatch.setenv("SQUALL_TEST_KEPT", "environment")
    monkeypatch.delenv("SQUALL_TEST_NAME", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    try:
        cfg, _ = load_config(["--env-file", str(env)])
        assert cfg.process.workers == 3
        assert os.environ["SQUALL_TEST_NAME"] == "from file"
        assert os.environ["SQUALL_TEST_KEPT"] == "environment"  # the environment wins, as uvicorn
    finally:
        os.environ.pop("SQUALL_TEST_NAME", None)
        os.environ.pop("WEB_CONCURRENCY", None)


def test_ignored_and_noted_options() -> None:
    options = {o.name: o for o in config.options()}
    assert options["timeout_notify"].ignored(None) is None
    assert "--timeout-notify" in (options["timeout_notify"].ignored(30.0) or "")
    assert "--h11-max-incomplete-event-size" in (options["h11_max_incomplete_event_size"].ignored(1) or "")
    assert "httptools" in (options["http"].note("h11") or "")
    assert options["http"].note("auto") is None
    assert options["ws"].note("none") is None and options["ws"].note("wsproto")
