"""A stand-in for JupyterHub's `GET /hub/api/user`, which ngshare 0.6.0 calls on every request.

    python -m bench.fakehub --port 18081 --tokens tokens.json

`tokens.json` maps tokens to user names ({token: user}, the format of
`ngshare serve --token-file`). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def make_handler(users: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization", "")
            token = auth.split(" ", 1)[1] if auth.lower().startswith("token ") else ""
            name = users.get(token)
            if self.path.split("?")[0].rstrip("/") != "/hub/api/user" or name is None:
                self._reply(403, {"status": 403, "message": "Invalid or missing token"})
                return
            self._reply(200, {"kind": "user", "name": name, "admin": False, "groups": []})

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *_args: object) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", required=True, help="JSON {token: user}")
    args = parser.parse_args()
    users = json.loads(Path(args.tokens).read_text())
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(users))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
