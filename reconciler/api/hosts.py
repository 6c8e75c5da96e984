"""What the host of an http(s) URL means, decided the way the WHATWG URL standard decides it. Pure.

Called by the `MCPServer` model's URL validators (`server.py`), by the engine's check of rendered URLs
(`engine.desired`) and by the SSRF guard (`probe.ssrf.url_problem`, `probe.ssrf.resolve_checked`), so that what
`validate` accepts, what the guard checks and what the probe connects to are one reading of the same text.

The standard's rule: a host whose last label is a number (`1`, `0x7f`) is an IPv4 address, and each dotted part
may be decimal, octal (leading `0`) or hex (`0x`), with fewer than four parts filling the last bytes (`127.1`,
`0177.0.0.1` and `2130706433` are all 127.0.0.1); if such a host does not parse (`999.0.0.1`, `1.2.3.4.5`,
`foo.1`) the URL is invalid, never a name to look up in DNS. Validation goes one step further than the standard
and asks for the dotted-decimal spelling, because clients outside it (Python's `ipaddress`, httpx, many
runtimes) refuse or misread the other forms; the guard still checks what the standard says they mean.
"""

from __future__ import annotations

import functools
import ipaddress
import string
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

MAX_LABEL = 63
MAX_DOMAIN = 253
# The standard's forbidden domain code points (besides controls and non-printing characters).
FORBIDDEN_IN_DOMAIN = frozenset(" #/:<>?@[\\]^|%")
HEX_DIGITS = frozenset(string.hexdigits)


class InvalidHost(ValueError):
    """The host is not a valid host; the message says why, and names no secret (hosts carry none)."""


@dataclass(frozen=True)
class Host:
    """A parsed host. `address` is the canonical text of an IP host, None for a domain."""

    kind: Literal["domain", "ipv4", "ipv6"]
    text: str
    """The host as written (lower-cased, without brackets)."""
    address: str | None = None

    @property
    def canonical(self) -> bool:
        """Written the one way every client reads the same (always true for a domain or IPv6)."""
        return self.address is None or self.kind == "ipv6" or self.address == self.text


def _ipv4_number(part: str) -> int | None:
    """The standard's "IPv4 number parser": decimal, octal with a leading 0, hex with 0x; None on failure."""
    if not part:
        return None
    radix = 10
    if part[:2] in ("0x", "0X"):
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if not part:
        return 0
    digits = {10: string.digits, 8: string.octdigits, 16: string.hexdigits}[radix]
    if not all(char in digits for char in part):
        return None
    return int(part, radix)


def _ends_in_a_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "":
        if len(parts) == 1:
            return False
        parts.pop()
    last = parts[-1]
    if last and all(char in string.digits for char in last):
        return True
    return _ipv4_number(last) is not None


def _parse_ipv4(host: str) -> str:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if len(parts) > 4:
        raise InvalidHost(f"{host!r} has more than four parts, so it is not an IPv4 address")
    numbers = []
    for part in parts:
        number = _ipv4_number(part)
        if number is None:
            raise InvalidHost(f"{host!r} ends in a number, so it must be an IPv4 address, and {part!r} is not a number")
        numbers.append(number)
    if any(number > 255 for number in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise InvalidHost(f"{host!r} is not an IPv4 address: a part is out of range")
    value = numbers[-1] + sum(number * 256 ** (3 - index) for index, number in enumerate(numbers[:-1]))
    return str(ipaddress.IPv4Address(value))


def _check_domain(host: str) -> None:
    if not FORBIDDEN_IN_DOMAIN.isdisjoint(host) or not host.isprintable():
        raise InvalidHost(f"{host!r} contains a character no host name may contain")
    labels = host.rstrip(".").split(".")
    if len(host.rstrip(".")) > MAX_DOMAIN:
        raise InvalidHost(f"{host[:40]!r}… is longer than {MAX_DOMAIN} characters")
    if "" in labels:
        raise InvalidHost(f"{host!r} has an empty label")
    if max(map(len, labels)) > MAX_LABEL:
        raise InvalidHost(f"{host!r} has a label longer than {MAX_LABEL} characters")


def parse_host(host: str) -> Host:
    """Parse a URL's host (as `urlsplit(...).hostname` gives it, brackets optional); raise `InvalidHost`."""
    text = host.strip().lower()
    if not text:
        raise InvalidHost("the host is empty")
    if text.startswith("[") or ":" in text:
        inner = text.strip("[]")
        try:
            address = ipaddress.IPv6Address(inner.split("%", 1)[0])
        except ValueError:
            raise InvalidHost(f"{host!r} is not a valid IPv6 address") from None
        return Host("ipv6", inner, str(address))
    if _ends_in_a_number(text):
        return Host("ipv4", text, _parse_ipv4(text))
    _check_domain(text)
    return Host("domain", text)


@functools.lru_cache(maxsize=16384)
def url_host_problem(url: str) -> str | None:
    """Why the host of an http(s) URL is refused by validation (invalid, or an IPv4 address in a form other than
    dotted decimal), or None. URLs still holding a `{{ template }}` are checked after rendering instead.

    Remembered per URL: a server's URL is checked when its model is validated and again, rendered, when its row is
    built (a cold apply of 10,000 objects checks 4,000 URLs twice); a pure answer about a short string."""
    if "{{" in url or "{%" in url:
        return None
    try:
        hostname = urlsplit(url).hostname
    except ValueError:
        return "the URL cannot be parsed"
    if not hostname:
        return None  # the URL pattern and the rendered-URL check report a missing host
    try:
        host = parse_host(hostname)
    except InvalidHost as err:
        return f"invalid host: {err}"
    if not host.canonical:
        return (
            f"host {hostname!r} is an IPv4 address in octal, hex or shortened form, which the URL standard reads as "
            f"{host.address}; write {host.address} (other clients read it differently or not at all)"
        )
    return None
