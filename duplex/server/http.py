"""The HTTP side of the server: token check at the handshake, and the browser page.

websockets calls `HttpFront.process_request` for every incoming request
before the WebSocket handshake. It refuses a missing or wrong token with 401
(nothing at all is served without it), lets `/v1/duplex` go on to the
handshake, and answers plain GETs of the page's few files from memory.

Browsers cannot set headers on a WebSocket, so the token may come as
`?token=`; the page passes its own `?token=` on to every file it loads and to
its socket, so a user opens `http://HOST:PORT/?token=...` and nothing else.
"""

from __future__ import annotations

import hmac
import mimetypes
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from duplex.server.protocol import PATH

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


class HttpFront:
    def __init__(self, token: str | None, static_dir: Path = STATIC_DIR):
        self.token = token
        self.files = {f"/{p.name}": p.read_bytes() for p in sorted(static_dir.iterdir()) if p.is_file()}
        self.files["/"] = self.files["/index.html"]

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        expected = self.token.encode()
        header = request.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), expected):
            return True
        for offered in parse_qs(urlsplit(request.path).query).get("token", []):
            if hmac.compare_digest(offered.encode(), expected):
                return True
        return False

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if not self.authorized(request):
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "401 Unauthorized: a valid token is required\n")
            response.headers["WWW-Authenticate"] = 'Bearer realm="duplex"'
            return response
        path = urlsplit(request.path).path
        if path == PATH:
            return None  # go on with the WebSocket handshake
        body = self.files.get(path)
        if body is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "404 Not Found\n")
        content_type = mimetypes.guess_type(path if path != "/" else "/index.html")[0] or "application/octet-stream"
        headers = Headers(
            [
                ("Content-Type", f"{content_type}; charset=utf-8" if content_type.startswith("text/") else content_type),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
            ]
        )
        return Response(HTTPStatus.OK, "OK", headers, body)
