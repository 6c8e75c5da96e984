"""`connect` and `disconnect`: an administrator at a terminal connects a member's own account to an
authorization-code server (ThinkWork's "Authenticate"), the way `gh auth login` does.

`connect` begins a login through the engine (`engine/connecting.py`), listens for the callback on a loopback
address with a port the system picks (RFC 8252 §7.3: authorization servers accept any port on a loopback
redirect URI), prints the URL (and opens it with `--open`), waits a bounded time, then has the engine check the
callback, exchange the code and store the tokens. The page the browser lands on says whether it worked.
`disconnect` revokes where the issuer offers it and deletes the tokens. `cli.py` declares the arguments.
"""

from __future__ import annotations

import argparse
import html
import queue
import threading
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, TextIO
from urllib.parse import parse_qsl, urlsplit

from reconciler.errors import PermanentError, ReconcilerError

if TYPE_CHECKING:
    from reconciler.credentials import SecretReader
    from reconciler.probe import ProbeSettings

CALLBACK_PATH = "/oauth/callback"
PAGE_WAIT_SECONDS = 60.0
"""How long the browser's request waits for the exchange before its page says to look at the terminal."""


class LoopbackCallback:
    """One callback on 127.0.0.1: the parameters it brought, and the page to answer with once the engine is done."""

    def __init__(self) -> None:
        self._arrived: queue.Queue[dict[str, str]] = queue.Queue(maxsize=1)
        self._outcome: queue.Queue[tuple[bool, str]] = queue.Queue(maxsize=1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="connect-callback", daemon=True)

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{CALLBACK_PATH}"

    def wait(self, timeout: float) -> dict[str, str] | None:
        try:
            return self._arrived.get(timeout=timeout)
        except queue.Empty:
            return None

    def answer(self, ok: bool, message: str) -> None:
        self._outcome.put((ok, message))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        callback = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH:
                    self._page(404, "Not found", "This address only receives the login's callback.")
                    return
                try:
                    callback._arrived.put_nowait(dict(parse_qsl(parts.query)))
                except queue.Full:
                    self._page(409, "Already used", "This login has already received its callback.")
                    return
                try:
                    ok, message = callback._outcome.get(timeout=PAGE_WAIT_SECONDS)
                except queue.Empty:
                    ok, message = False, "The exchange is taking long: see the terminal for the result."
                self._page(200 if ok else 400, "Connected" if ok else "Not connected", message)

            def _page(self, status: int, title: str, message: str) -> None:
                body = (
                    "<!doctype html><meta charset=utf-8><title>mcp-reconciler</title>"
                    f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>"
                    "<p>You can close this window.</p>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Referrer-Policy", "no-referrer")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # the query carries the code and state: never logged

        return Handler

    @contextmanager
    def running(self) -> Iterator[LoopbackCallback]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)


def _whose(args: argparse.Namespace) -> tuple[str, str]:
    """(the `user_tokens` member id, how to name it): a member, or the organization (`--shared`); through a
    `perMember` connection with `--connection`."""
    from reconciler.records import ORGANIZATION_MEMBER

    if args.shared:
        if args.connection is not None:
            raise PermanentError(
                "--shared connects the organization on the server itself; --connection names a perMember "
                "connection, which holds members' own accounts: give --member with it"
            )
        return ORGANIZATION_MEMBER, "the organization"
    return str(args.member), f"member {args.member}"


def _through(args: argparse.Namespace) -> str:
    """` through connection NAME` for a login kept for a perMember connection; empty on the server itself."""
    return "" if args.connection is None else f" through connection {args.connection}"


def cmd_connect(
    args: argparse.Namespace, out: TextIO, *, settings: ProbeSettings, public_url: str | None = None
) -> int:
    from reconciler.credentials.connecting import expires_in
    from reconciler.engine.connecting import begin_member_login, finish_member_login
    from reconciler.registry import open_registry

    secrets = _secrets(args)
    member, who = _whose(args)
    registry = open_registry(args.registry, manager=args.manager)
    try:
        with LoopbackCallback().running() as callback:
            pending = begin_member_login(
                registry,
                secrets,
                tenant=args.namespace,
                server=args.name,
                member=member,
                redirect_uri=callback.redirect_uri,
                settings=settings,
                public_url=public_url,
                connection=args.connection,
            )
            print(f"Open this URL to connect {who}'s account to {args.name}{_through(args)}:", file=out)
            print(pending.login.authorization_url, file=out, flush=True)
            if args.open:
                webbrowser.open(pending.login.authorization_url)
            params = callback.wait(timeout=args.timeout)
            if params is None:
                raise PermanentError(f"no callback within {args.timeout:.0f}s: the login was not completed")
            try:
                token = finish_member_login(registry, pending, params, settings=settings)
            except ReconcilerError as err:
                callback.answer(False, str(err))
                raise
            callback.answer(True, f"{who[0].upper()}{who[1:]} is connected to {args.name}. Return to the terminal.")
    finally:
        registry.close()
    print(
        f"Connected: {who} on {args.namespace}/{args.name}{_through(args)} (the token {expires_in(token)}).", file=out
    )
    return 0


def cmd_disconnect(
    args: argparse.Namespace, out: TextIO, *, settings: ProbeSettings, public_url: str | None = None
) -> int:
    from reconciler.engine.connecting import disconnect_member
    from reconciler.registry import open_registry

    member, who = _whose(args)
    registry = open_registry(args.registry, manager=args.manager)
    try:
        done = disconnect_member(
            registry,
            _secrets(args),
            tenant=args.namespace,
            server=args.name,
            member=member,
            settings=settings,
            public_url=public_url,
            connection=args.connection,
        )
    finally:
        registry.close()
    print(f"Disconnected: {who} from {args.namespace}/{args.name}{_through(args)}; {done.revocation}.", file=out)
    return 0


def _secrets(args: argparse.Namespace) -> SecretReader:
    from reconciler.engine.inputs import StaticSecrets
    from reconciler.manifests import load_folder

    return load_folder(args.filename).secrets if args.filename else StaticSecrets()
