"""Error log and access log, both through :mod:`logging`.

Named ``logs`` rather than ``logging`` so that the package never shadows the standard library.
"""

from __future__ import annotations

import logging
import sys

from squall.observe.access import JSONFormatter

TRACE = 5
LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

error_log = logging.getLogger("squall.error")
access_log = logging.getLogger("squall.access")


def configure(level: str = "info", access: bool = True, log_format: str = "text") -> None:
    """Send squall's logs to stderr at ``level``; access lines (INFO) show at info and below.
    ``log_format`` ``json``: one JSON object a line (``squall.observe.access.JSONFormatter``)."""
    logging.addLevelName(TRACE, "TRACE")
    formatter: logging.Formatter = JSONFormatter()
    if log_format != "json":
        formatter = logging.Formatter(
            "%(asctime)s [%(process)d] %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"
        )
    for logger in (error_log, access_log):
        logger.handlers.clear()
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.propagate = False
    error_log.setLevel(LEVELS[level])
    access_log.setLevel(LEVELS[level] if access else logging.CRITICAL + 1)
    access_log.disabled = not access
