"""A SCRIPTED STAND-IN for the outside systems of the sample agent (CRM, ERP, Jira).

Real CRM, ERP and Jira servers cannot run here; this in-memory HTTP server answers the few
endpoints that ``samples/agents/*.yaml`` describe, so the tests exercise our side of the protocol:
the URLs, query and body we send, the headers (authorisation from the environment, an
``Idempotency-Key`` on every write), and what we do with errors and a dead server. It records
every request, and a write repeated with the same idempotency key is not done twice (as real
payment and ticket APIs behave).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class Standin:
    def __init__(self) -> None:
        self.customers = {"c-17": {"id": "c-17", "name": "Анна Петрова", "phone": "+79161234567",
                                   "email": "anna@example.ru", "address": "Казань, ул. Баумана, 12"}}
        self.orders = {"77-2051": {"order_id": "77-2051", "customer_id": "c-17", "status": "доставлен",
                                   "total": 12490.0, "delivered": "2026-11-20"},
                       "77-2052": {"order_id": "77-2052", "customer_id": "c-17", "status": "в пути",
                                   "total": 2190.0, "delivered": None}}
        self.refunds: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._done: dict[str, Any] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Standin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body, ensure_ascii=False).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                u = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                key = self.headers.get("Idempotency-Key")
                owner.requests.append({"method": method, "path": u.path, "query": parse_qs(u.query), "body": body,
                                       "auth": self.headers.get("Authorization"), "idempotency_key": key})
                if key and key in owner._done:
                    return self._send(200, owner._done[key])
                code, out = owner.answer(method, u.path, parse_qs(u.query), body)
                if key and code < 400:
                    owner._done[key] = out
                self._send(code, out)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

        return Handler

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "GET" and path == "/crm/customers":
            phone = (query.get("phone") or [""])[0].replace(" ", "")
            email = (query.get("email") or [""])[0]
            return 200, [c for c in self.customers.values() if (phone and c["phone"] == phone) or c["email"] == email]
        if m := re.fullmatch(r"/crm/customers/([\w-]+)", path):
            if m.group(1) not in self.customers:
                return 404, {"error": "no such customer"}
            self.customers[m.group(1)].update(body or {})
            return 200, self.customers[m.group(1)]
        if m := re.fullmatch(r"/erp/orders/([\w-]+)", path):
            order = self.orders.get(m.group(1))
            return (200, order) if order else (404, {"error": "no such order"})
        if method == "POST" and path == "/erp/refunds":
            refund = {"refund_id": f"R-{len(self.refunds) + 1}", **body, "state": "created"}
            self.refunds.append(refund)
            return 201, refund
        if method == "POST" and path == "/jira/rest/api/2/issue":
            issue = {"id": str(10000 + len(self.issues)), "key": f"SUP-{len(self.issues) + 1}"}
            self.issues.append({**issue, "fields": body["fields"]})
            return 201, issue
        return 404, {"error": f"no route {method} {path}"}
