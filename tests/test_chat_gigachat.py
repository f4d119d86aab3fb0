"""GigaChat adapter against a scripted STAND-IN server on loopback (not the real Sber service).

The stand-in implements just enough of the two endpoints: ``POST /api/v2/oauth`` (Basic auth key,
RqUID, scope → access_token + expires_at in ms) and ``POST /api/v1/chat/completions`` (Bearer
token; functions / function_call dialect; SSE when ``stream``).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from spravka.core.errors import ConfigError
from spravka.core.settings import LLMSettings
from spravka.models.chat import ChatResult, UsageLedger, tool_result
from spravka.models.gigachat import GigaChatModel
from spravka.models.providers import build_chat_model

AUTH_KEY = "c3RhbmQtaW4tY2xpZW50OnN0YW5kLWluLXNlY3JldA=="  # base64("stand-in-client:stand-in-secret")


class StandIn:
    """State of the stand-in GigaChat: issued tokens, revoked ones, and what was received."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self.oauth_requests: list[dict[str, Any]] = []
        self.chat_requests: list[dict[str, Any]] = []
        self.chat_auth: list[str] = []
        self.token_ttl_ms = 30 * 60 * 1000
        #: scripted assistant messages, answered in turn before the default behaviour
        self.script: list[dict[str, Any]] = []

    def revoke_all(self) -> None:
        self.valid.clear()


@pytest.fixture
def standin() -> Iterator[tuple[StandIn, str]]:
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _json(self, code: int, obj: Any) -> None:
            body = json.dumps(obj, ensure_ascii=False).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/api/v2/oauth":
                state.oauth_requests.append(
                    {
                        "authorization": self.headers.get("Authorization"),
                        "rquid": self.headers.get("RqUID"),
                        "body": raw.decode(),
                    }
                )
                if self.headers.get("Authorization") != f"Basic {AUTH_KEY}":
                    return self._json(401, {"code": 6, "message": "credentials doesn't match db data"})
                token = f"tok-{uuid.uuid4().hex[:8]}"
                state.valid.add(token)
                return self._json(
                    200, {"access_token": token, "expires_at": int(time.time() * 1000) + state.token_ttl_ms}
                )
            if self.path == "/api/v1/chat/completions":
                token = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                state.chat_auth.append(token)
                if token not in state.valid:
                    return self._json(401, {"status": 401, "message": "Token has expired"})
                body = json.loads(raw)
                state.chat_requests.append(body)
                if state.script:
                    message = state.script.pop(0)
                    finish = "function_call" if message.get("function_call") else "stop"
                elif body.get("functions") and body["messages"][-1]["role"] == "user":
                    message = {
                        "role": "assistant",
                        "content": "",
                        "function_call": {"name": "get_weather", "arguments": {"city": "Москва"}},
                    }
                    finish = "function_call"
                else:
                    message = {"role": "assistant", "content": "Здравствуйте! Я стенд-ин GigaChat."}
                    finish = "stop"
                usage = {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20}
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for piece in ("Здравствуйте", "! Я стенд-ин", " GigaChat."):
                        chunk = {"choices": [{"index": 0, "delta": {"content": piece}}], "model": "GigaChat"}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}
                    self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
                    return None
                return self._json(
                    200,
                    {
                        "model": "GigaChat:2.0",
                        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                        "usage": usage,
                    },
                )
            return self._json(404, {"message": "not found"})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def make(base: str, **kw: Any) -> GigaChatModel:
    llm = LLMSettings(
        provider="gigachat",
        base_url=f"{base}/api/v1",
        auth_url=f"{base}/api/v2/oauth",
        api_key=SecretStr(kw.pop("key", AUTH_KEY)),
        scope="GIGACHAT_API_PERS",
        price_in_per_1k=1.0,
        price_out_per_1k=2.0,
        **kw,
    )
    model = build_chat_model(llm, ledger=UsageLedger())
    assert isinstance(model, GigaChatModel)
    return model


MSG = [{"role": "user", "content": "Привет"}]


def test_oauth_token_is_fetched_once_and_cached(standin: tuple[StandIn, str]):
    state, base = standin
    m = make(base)
    assert m.config.external
    r1 = m.chat(MSG)
    r2 = m.chat(MSG)
    assert r1.text.startswith("Здравствуйте") and r2.text == r1.text
    assert len(state.oauth_requests) == 1 and m.token_fetches == 1
    req = state.oauth_requests[0]
    assert req["authorization"] == f"Basic {AUTH_KEY}" and req["body"] == "scope=GIGACHAT_API_PERS"
    uuid.UUID(req["rquid"])  # a fresh uuid4 per request
    assert state.chat_auth[0] == state.chat_auth[1] and state.chat_auth[0] in state.valid
    assert r1.cost == pytest.approx(12 / 1000 * 1.0 + 8 / 1000 * 2.0)
    assert "temperature" in state.chat_requests[0] and "stop" not in state.chat_requests[0]


def test_token_is_refreshed_on_401(standin: tuple[StandIn, str]):
    state, base = standin
    m = make(base)
    m.chat(MSG)
    state.revoke_all()  # the stand-in now answers 401 to the cached token
    assert m.chat(MSG).text
    assert len(state.oauth_requests) == 2
    assert state.chat_auth[-2] != state.chat_auth[-1]
    assert m.breaker.state == "closed"


def test_token_is_refreshed_before_it_expires(standin: tuple[StandIn, str]):
    state, base = standin
    state.token_ttl_ms = 30 * 1000  # inside the 60 s safety margin: never reused
    m = make(base)
    m.chat(MSG)
    m.chat(MSG)
    assert len(state.oauth_requests) == 2


def test_wrong_authorization_key_is_a_config_error(standin: tuple[StandIn, str]):
    _, base = standin
    m = make(base, key="bm90LXRoZS1rZXk=")
    with pytest.raises(ConfigError, match="refused the authorization key"):
        m.chat(MSG)
    assert m.breaker.state == "closed"


def test_tools_are_translated_to_functions_and_back(standin: tuple[StandIn, str]):
    state, base = standin
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Погода",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    m = make(base)
    r = m.chat([{"role": "user", "content": "Погода в Москве?"}], tools=tools, tool_choice="auto")
    assert r.finish_reason == "function_call"
    call = r.tool_calls[0]
    assert call.name == "get_weather" and call.arguments == {"city": "Москва"}
    sent = state.chat_requests[0]
    assert sent["functions"][0]["name"] == "get_weather" and sent["function_call"] == "auto"
    assert "tools" not in sent

    follow = [{"role": "user", "content": "Погода в Москве?"}, r.as_message(), tool_result(call, {"t": -5})]
    m.chat(follow, tools=tools)
    msgs = state.chat_requests[1]["messages"]
    assert msgs[1]["function_call"] == {"name": "get_weather", "arguments": {"city": "Москва"}}
    assert msgs[2] == {"role": "function", "name": "get_weather", "content": '{"t": -5}'}


def test_stream_through_gigachat(standin: tuple[StandIn, str]):
    state, base = standin
    items = list(make(base).stream(MSG))
    final = items[-1]
    assert isinstance(final, ChatResult)
    assert (
        "".join(i for i in items if isinstance(i, str)) == final.text == "Здравствуйте! Я стенд-ин GigaChat."
    )
    assert final.usage.completion == 8 and not final.usage.estimated
    assert "stream_options" not in state.chat_requests[0]


def test_an_agent_calls_its_tools_through_gigachat_functions(standin: tuple[StandIn, str], tmp_path, monkeypatch):
    """``agents.protocol: tools`` over the GigaChat client: the tools go as ``functions``, the call
    comes back as ``function_call``, and its result goes back as a ``function`` message whose
    content is a JSON object (the stand-in checks it parses)."""
    from pathlib import Path

    from agent_standin import Standin

    from spravka.app import Spravka
    from spravka.core.settings import Settings

    state, base = standin
    state.script = [
        {"role": "assistant", "content": "", "function_call": {"name": "erp__order_status",
                                                               "arguments": {"order_id": "77-2052"}}},
        {"role": "assistant", "content": "Заказ 77-2052 в пути."},
    ]
    monkeypatch.setenv("SPRAVKA_CRM_TOKEN", "t")
    monkeypatch.setenv("SPRAVKA_JIRA_BASIC", "dDp0")
    with Standin() as systems:
        (tmp_path / "agents").mkdir()
        for f in (Path(__file__).resolve().parents[1] / "samples" / "agents").glob("*.yaml"):  # the sample agent
            text = f.read_text(encoding="utf-8").replace("http://127.0.0.1:8765", systems.url)
            (tmp_path / "agents" / f.name).write_text(text, encoding="utf-8")
        app = Spravka(Settings(home=tmp_path, embedder={"provider": "use"}, agents={"protocol": "tools"},
                               llm={"provider": "gigachat", "base_url": f"{base}/api/v1",
                                    "auth_url": f"{base}/api/v2/oauth", "api_key": AUTH_KEY,
                                    "scope": "GIGACHAT_API_PERS"}))
        try:
            r = app.agents.run("support", "Какой статус у заказа 77-2052?", actor="ivan", role="editor")
        finally:
            app.close()
    assert r.status == "done" and r.answer == "Заказ 77-2052 в пути.", r.to_dict()
    assert [(s["tool"], s["outcome"]) for s in r.steps] == [("erp.order_status", "ok")]
    first, second = state.chat_requests[:2]
    assert "erp__order_status" in {f["name"] for f in first["functions"]} and "tools" not in first
    call, result = second["messages"][-2], second["messages"][-1]
    assert call["function_call"] == {"name": "erp__order_status", "arguments": {"order_id": "77-2052"}}
    assert result["role"] == "function" and result["name"] == "erp__order_status"
    assert json.loads(result["content"])["outcome"] == "ok" and "в пути" in json.loads(result["content"])["result"]
