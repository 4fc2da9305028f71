"""A stand-in for the gateway's internal proactive endpoint, at the network boundary.

It speaks the gateway's contract (Bearer token, JSON body, idempotency key replayed, 404 for a
customer with no reachable channel, 503 while "Rasa is down") and counts what it receives.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandInGateway:
    def __init__(self, token: str = "internal-token") -> None:
        self.token = token
        self.calls: list[dict[str, Any]] = []
        self.delivered: dict[str, dict[str, Any]] = {}  # idempotency key -> the request that was delivered
        self.unreachable: set[int] = set()
        self.down = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> StandInGateway:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def per_customer(self) -> Counter[int]:
        """How many distinct messages each customer actually received."""
        return Counter(int(body["customer_id"]) for body in self.delivered.values())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/internal/proactive":
                    return self._json(404, {"error": "not_found"})
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    return self._json(401, {"error": "unauthorized"})
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with outer._lock:
                    outer.calls.append(body)
                    if outer.down:
                        return self._json(503, {"error": "rasa_unavailable"})
                    if body["customer_id"] in outer.unreachable:
                        return self._json(404, {"error": "unreachable"})
                    key = body["idempotency_key"]
                    replayed = key in outer.delivered
                    outer.delivered.setdefault(key, body)
                return self._json(200, {"messages": [1], "status": "sent", "replayed": replayed})

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                return

        return Handler
