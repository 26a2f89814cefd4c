"""What a worker's connections and HTTP cycles report to, built once from the config."""

from __future__ import annotations

import logging

from squall.config import Config
from squall.observe.access import AccessLog, access_logger
from squall.observe.metrics import Metrics


class Observer:
    """The access log, the metrics, the request id header and the request deadline of one worker;
    each None when off. ``observer()`` returns no Observer at all when every one is off, so a
    request then pays one ``is None`` test."""

    __slots__ = ("access", "metrics", "request_id_header", "timeout")

    def __init__(
        self,
        access: AccessLog | None = None,
        metrics: Metrics | None = None,
        request_id_header: bytes | None = None,
        timeout: float | None = None,
    ) -> None:
        self.access = access
        self.metrics = metrics
        self.request_id_header = request_id_header
        self.timeout = timeout


def observer(config: Config, metrics: Metrics | None) -> Observer | None:
    """The Observer ``config`` asks for, or None when it asks for nothing."""
    access = None
    if config.runtime.access_log and access_logger.isEnabledFor(logging.INFO):
        access = AccessLog()
    header = config.observe.request_id_header
    timeout = config.http.timeout_request
    if access is None and metrics is None and header is None and timeout is None:
        return None
    return Observer(access, metrics, header.encode("latin-1") if header else None, timeout)
