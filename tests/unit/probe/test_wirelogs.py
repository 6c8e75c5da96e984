"""httpcore2's header-carrying DEBUG records keep the event and status code and lose every header value, for
both the HTTP/1.1 and the HTTP/2 shape of `return_value`; other records pass untouched."""

from __future__ import annotations

import logging

import pytest

from reconciler.probe.wirelogs import HeaderValuesWithheld

SECRET = "zz-wire-secret-zz"
HEADERS = f"[(b'www-authenticate', b'Bearer error_description=\"{SECRET}\"')]"


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("httpcore2.http11", logging.DEBUG, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            f"receive_response_headers.complete return_value=(b'HTTP/1.1', 401, b'Unauthorized', {HEADERS})",
            "receive_response_headers.complete status=401 (header values withheld)",
        ),
        (
            f"receive_response_headers.complete return_value=(401, {HEADERS})",
            "receive_response_headers.complete status=401 (header values withheld)",
        ),
        ("send_request_headers.started request=<Request [b'POST']>", "send_request_headers.started"),
        ("connect_tcp.complete return_value=<Stream>", "connect_tcp.complete return_value=<Stream>"),
        ("response_closed.started", "response_closed.started"),
    ],
)
def test_header_values_are_withheld(message: str, expected: str) -> None:
    item = record(message)

    assert HeaderValuesWithheld().filter(item) is True
    assert item.getMessage() == expected
    assert SECRET not in item.getMessage()
