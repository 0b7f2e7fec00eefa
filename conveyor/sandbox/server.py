"""The sandbox's HTTP server: moto's WSGI application, with the REST APIs of the deployment
(:mod:`conveyor.sandbox.apis`) in front of it at ``/restapis/<id>/<stage>/_user_request_/``.

Unlike moto's ``ThreadedMotoServer``, the socket is bound in the caller's thread: a busy port
fails at once with :class:`PortBusy` naming the process that holds it (moto's server thread
dies and leaves ``start()`` waiting forever).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from conveyor.sandbox.apis import PATH, RestApis


class PortBusy(OSError):
    """The port is taken; ``owner`` describes the process listening on it, when known."""

    def __init__(self, port: int, owner: str | None) -> None:
        self.port = port
        self.owner = owner
        held = f"by {owner}" if owner else "by another process"
        super().__init__(f"port {port} is already in use {held}")


def port_owner(port: int) -> str | None:
    """``pid N (command line)`` of the process listening on 127.0.0.1/0.0.0.0:``port`` (Linux
    ``/proc``), or None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            listening = len(fields) > 9 and fields[3] == "0A"  # TCP_LISTEN
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    return f"pid {proc.name} ({command.strip()[:120]})"
        except OSError:
            continue
    return None


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) != 0


class SandboxServer:
    """moto on ``host:port`` (loopback), plus the deployment's REST APIs once ``serve_apis``
    is called."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.port = port
        self.apis: RestApis | None = None
        self._moto = DomainDispatcherApplication(create_backend_app)
        try:
            self._server = make_server(
                host, port, self._app, threaded=True, request_handler=MotoRequestHandler
            )
        except OSError as error:
            if error.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
                raise PortBusy(port, port_owner(port)) from None
            raise
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> SandboxServer:
        self._thread.start()
        return self

    def serve_apis(self, apis: RestApis) -> None:
        self.apis = apis

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.apis is None or PATH.match(path) is None:
            return self._moto(environ, start_response)  # type: ignore[no-any-return]
        from werkzeug.wrappers import Request

        request = Request(environ)
        response = self.apis.handle(
            request.method,
            path,
            headers=dict(request.headers.items()),
            query=dict(request.args.items()),
            body=request.get_data(),
        )
        reason = "OK" if response.status < 400 else "Error"
        start_response(
            f"{response.status} {reason}",
            [*response.headers.items(), ("Content-Length", str(len(response.body)))],
        )
        return [response.body]
