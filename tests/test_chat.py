"""The ChatModel client without a model: scripted transports and loopback sockets.

Covers retries/backoff, Retry-After, the circuit breaker, the concurrency limit, dead and silent
servers, SSE streaming, usage/cost accounting, the privacy hooks, structured output and presets.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import BaseModel

from spravka.core.errors import ConfigError, ModelError, ModelUnavailableError
from spravka.core.settings import LLMSettings, load_settings
from spravka.models.chat import (
    ChatConfig,
    ChatModel,
    ChatResult,
    CircuitBreaker,
    OpenAIChatModel,
    UsageLedger,
    _recover_tool_calls,
    tool_result,
)
from spravka.models.providers import PRESETS, build_chat_model, chat_config, is_inside_perimeter

URL = "http://llm.test/v1"


def completion(
    text: str = "Привет", *, prompt: int = 10, completion_tokens: int = 5, **message: object
) -> dict:
    return {
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text, **message},
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens},
    }


class Script:
    """A transport that answers requests from a list of responses (or callables) in order."""

    def __init__(self, *responses: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]):
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, Exception):
            raise item
        if callable(item) and not isinstance(item, httpx.Response):
            return item(request)
        return item

    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


def make(script: Script, clock: FakeClock | None = None, **cfg: object) -> OpenAIChatModel:
    clock = clock or FakeClock()
    config = ChatConfig(**{"base_url": URL, "model": "m", "name": "test", **cfg})  # type: ignore[arg-type]
    return OpenAIChatModel(
        config, transport=httpx.MockTransport(script), ledger=UsageLedger(), clock=clock, sleep=clock.sleep
    )


MSG = [{"role": "user", "content": "Привет"}]


# ---- basic call, usage, cost -----------------------------------------------------------------


def test_chat_parses_text_usage_and_cost():
    script = Script(httpx.Response(200, json=completion("Здравствуйте", prompt=1000, completion_tokens=500)))
    m = make(script, price_in_per_1k=0.2, price_out_per_1k=0.6, currency="RUB")
    r = m.chat(MSG, temperature=0.1, max_tokens=64, stop=["\n\n"])
    assert isinstance(m, ChatModel)
    assert r.text == "Здравствуйте" and r.finish_reason == "stop" and r.model == "m"
    assert (r.usage.prompt, r.usage.completion, r.usage.total) == (1000, 500, 1500)
    assert r.cost == pytest.approx(0.2 + 0.3) and r.currency == "RUB"
    body = script.bodies()[0]
    assert body["max_tokens"] == 64 and body["stop"] == ["\n\n"] and body["temperature"] == 0.1
    assert "tools" not in body and "response_format" not in body
    t = m.ledger.totals("test")
    assert (t.calls, t.prompt_tokens, t.completion_tokens, t.cost) == (1, 1000, 500, pytest.approx(0.5))


def test_usage_is_estimated_when_the_server_sends_none():
    data = completion("ответ " * 10)
    del data["usage"]
    r = make(Script(httpx.Response(200, json=data))).chat(MSG)
    assert r.usage.estimated and r.usage.prompt > 0 and r.usage.completion > 0


def test_api_key_is_sent_and_hidden_from_repr():
    script = Script(httpx.Response(200, json=completion()))
    m = make(script, api_key="sekret")
    m.chat(MSG)
    assert script.requests[0].headers["Authorization"] == "Bearer sekret"
    assert "sekret" not in repr(m.config) and "sekret" not in repr(m)


def test_empty_messages_and_bad_config_are_rejected():
    with pytest.raises(ModelError):
        make(Script(httpx.Response(200, json=completion()))).chat([])
    with pytest.raises(ConfigError):
        ChatConfig(base_url="localhost:8080", model="m")


# ---- retries and backoff -----------------------------------------------------------------------


def test_retries_5xx_with_exponential_backoff_then_succeeds():
    clock = FakeClock()
    script = Script(
        httpx.Response(503, json={"error": {"message": "loading"}}),
        httpx.Response(502),
        httpx.Response(200, json=completion("ok")),
    )
    m = make(script, clock, max_retries=3, backoff_base_s=1.0)
    assert m.chat(MSG).text == "ok"
    assert len(script.requests) == 3
    # full jitter between half and all of base * 2^n
    assert 0.5 <= clock.slept[0] <= 1.0 and 1.0 <= clock.slept[1] <= 2.0


def test_retry_after_header_is_respected():
    clock = FakeClock()
    script = Script(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200, json=completion()))
    make(script, clock, max_retries=2).chat(MSG)
    assert clock.slept == [3.0]


def test_retry_after_beyond_the_budget_fails_at_once():
    clock = FakeClock()
    script = Script(httpx.Response(429, headers={"Retry-After": "120"}))
    with pytest.raises(ModelUnavailableError, match="exceed"):
        make(script, clock, timeout_s=10, max_retries=3).chat(MSG)
    assert clock.slept == [] and len(script.requests) == 1


def test_connect_errors_are_retried_then_unavailable():
    clock = FakeClock()
    script = Script(httpx.ConnectError("Connection refused"))
    m = make(script, clock, max_retries=2, backoff_base_s=0.1)
    with pytest.raises(ModelUnavailableError, match="3 attempt"):
        m.chat(MSG)
    assert len(script.requests) == 3
    assert m.ledger.totals("test").failures == 1


def test_4xx_is_not_retried_and_does_not_trip_the_circuit():
    script = Script(httpx.Response(400, json={"error": {"message": "bad max_tokens"}}))
    m = make(script, circuit_failures=1)
    with pytest.raises(ModelError, match="bad max_tokens") as e:
        m.chat(MSG)
    assert not isinstance(e.value, ModelUnavailableError)
    assert len(script.requests) == 1 and m.breaker.state == "closed"


def test_invalid_json_body_is_a_model_error():
    with pytest.raises(ModelError, match="invalid JSON"):
        make(Script(httpx.Response(200, text="<html>"))).chat(MSG)


# ---- circuit breaker ---------------------------------------------------------------------------


def test_circuit_opens_fails_fast_half_opens_and_closes():
    clock = FakeClock()
    state = {"up": False}

    def server(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("Connection refused")
        return httpx.Response(200, json=completion("снова работает"))

    script = Script(server)
    m = make(script, clock, max_retries=0, circuit_failures=2, circuit_cooldown_s=30)
    for _ in range(2):
        with pytest.raises(ModelUnavailableError, match="attempt"):
            m.chat(MSG)
    assert m.breaker.state == "open"
    sent = len(script.requests)
    with pytest.raises(ModelUnavailableError, match=r"circuit open, next try in 30 s \(at \d\d:\d\d:\d\d\)"):
        m.chat(MSG)
    assert len(script.requests) == sent  # failed fast, nothing sent

    clock.now += 31
    assert m.breaker.state == "half_open"
    with pytest.raises(ModelUnavailableError, match="attempt"):  # the trial fails: open again
        m.chat(MSG)
    assert m.breaker.state == "open"
    with pytest.raises(ModelUnavailableError, match="circuit open"):
        m.chat(MSG)

    clock.now += 31
    state["up"] = True
    assert m.chat(MSG).text == "снова работает"
    assert m.breaker.state == "closed"


def test_half_open_lets_exactly_one_trial_through():
    clock = FakeClock()
    b = CircuitBreaker("x", failures=1, cooldown_s=5, clock=clock)
    b.failure("boom")
    clock.now += 6
    b.before_call()  # the trial
    with pytest.raises(ModelUnavailableError, match="trial call is in flight"):
        b.before_call()
    b.success()
    b.before_call()
    assert b.state == "closed"


# ---- concurrency -----------------------------------------------------------------------------


def test_concurrency_limit_holds_and_times_out_with_a_clear_error():
    gate = threading.Event()
    in_flight = []
    peak = []
    lock = threading.Lock()

    def slow(request: httpx.Request) -> httpx.Response:
        with lock:
            in_flight.append(1)
            peak.append(len(in_flight))
        gate.wait(5)
        with lock:
            in_flight.pop()
        return httpx.Response(200, json=completion())

    config = ChatConfig(base_url=URL, model="m", name="c", max_concurrency=2, timeout_s=0.5)
    m = OpenAIChatModel(config, transport=httpx.MockTransport(slow), ledger=UsageLedger())
    errors: list[Exception] = []

    def call() -> None:
        try:
            m.chat(MSG)
        except ModelUnavailableError as e:
            errors.append(e)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.8)
    gate.set()
    for t in threads:
        t.join()
    assert max(peak) <= 2
    assert len(errors) == 1 and "request slots" in str(errors[0])


# ---- dead and silent servers (real sockets on loopback) ----------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_nobody_listens_on_gives_unavailable_quickly():
    port = free_port()
    config = ChatConfig(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", name="dead", timeout_s=3, backoff_base_s=0.05
    )
    m = OpenAIChatModel(config, ledger=UsageLedger())
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="connection refused"):
        m.chat(MSG)
    assert time.monotonic() - t0 < 3
    assert not m.ping()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and reads requests, never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                held.append(conn)
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_server_that_never_answers_times_out_within_budget(silent_server: int):
    config = ChatConfig(
        base_url=f"http://127.0.0.1:{silent_server}/v1", model="m", name="silent", timeout_s=1.0
    )
    m = OpenAIChatModel(config, ledger=UsageLedger())
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="no answer within 1 s"):
        m.chat(MSG)
    assert 0.9 < time.monotonic() - t0 < 2.0
    t0 = time.monotonic()
    with pytest.raises(ModelUnavailableError):
        list(m.stream(MSG))
    assert time.monotonic() - t0 < 2.5


# ---- streaming ---------------------------------------------------------------------------------


def sse(*events: dict | str) -> httpx.Response:
    lines = []
    for e in events:
        lines.append("data: " + (e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)) + "\n\n")
    return httpx.Response(200, text="".join(lines), headers={"Content-Type": "text/event-stream"})


def delta(text: str, finish: str | None = None) -> dict:
    return {"model": "m", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


def test_stream_yields_deltas_then_a_result_with_usage():
    script = Script(
        sse(
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
            delta("При"),
            delta("вет"),
            delta("!", "stop"),
            {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
            "[DONE]",
        )
    )
    m = make(script, price_out_per_1k=1.0)
    items = list(m.stream(MSG, max_tokens=8))
    assert items[:-1] == ["При", "вет", "!"]
    final = items[-1]
    assert isinstance(final, ChatResult) and final.text == "Привет!"
    assert (final.usage.prompt, final.usage.completion, final.usage.estimated) == (7, 3, False)
    assert final.finish_reason == "stop" and final.cost == pytest.approx(0.003)
    body = script.bodies()[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert m.ledger.totals("test").calls == 1


def test_stream_retries_before_the_first_byte_and_estimates_missing_usage():
    clock = FakeClock()
    script = Script(httpx.Response(503), sse(delta("да", "stop"), "[DONE]"))
    items = list(make(script, clock, stream_usage=False).stream(MSG))
    assert items[0] == "да" and items[-1].usage.estimated
    assert "stream_options" not in script.bodies()[1]


def test_closing_a_stream_early_releases_its_slot():
    script = Script(
        sse(delta("a"), delta("b"), delta("c", "stop"), "[DONE]"), httpx.Response(200, json=completion())
    )
    m = make(script, max_concurrency=1)
    it = m.stream(MSG)
    assert next(it) == "a"
    it.close()
    assert m.chat(MSG).text  # the only slot is free again


# ---- privacy hooks -----------------------------------------------------------------------------


def masker() -> tuple[Callable, Callable]:
    def before(messages: list[dict]) -> tuple[list[dict], dict]:
        vault = {"[PERSON_1]": "Иван Петров"}
        return [{**m, "content": m["content"].replace("Иван Петров", "[PERSON_1]")} for m in messages], vault

    def after(text: str, vault: dict) -> str:
        for k, v in vault.items():
            text = text.replace(k, v)
        return text

    return before, after


def test_hooks_mask_before_send_and_restore_after_receive():
    before, after = masker()
    script = Script(httpx.Response(200, json=completion("Здравствуйте, [PERSON_1]!")))
    config = ChatConfig(base_url=URL, model="m", name="ext", external=True)
    m = OpenAIChatModel(
        config,
        transport=httpx.MockTransport(script),
        ledger=UsageLedger(),
        before_send=before,
        after_receive=after,
    )
    r = m.chat([{"role": "user", "content": "Я Иван Петров"}])
    assert "Иван Петров" not in script.requests[0].content.decode()
    assert r.text == "Здравствуйте, Иван Петров!"


def test_stream_restores_placeholders_split_across_chunks():
    before, after = masker()
    script = Script(
        sse(delta("Здравствуйте, [PER"), delta("SON_1]"), delta(", рад"), delta(" помочь.", "stop"), "[DONE]")
    )
    config = ChatConfig(base_url=URL, model="m", name="ext")
    m = OpenAIChatModel(
        config,
        transport=httpx.MockTransport(script),
        ledger=UsageLedger(),
        before_send=before,
        after_receive=after,
    )
    items = list(m.stream([{"role": "user", "content": "Я Иван Петров"}]))
    text = "".join(i for i in items if isinstance(i, str))
    assert text == items[-1].text == "Здравствуйте, Иван Петров, рад помочь."
    assert not any("[PER" in i for i in items if isinstance(i, str))


# ---- structured output -------------------------------------------------------------------------


class Ticket(BaseModel):
    category: str
    urgent: bool


def test_chat_json_sends_schema_and_validates():
    script = Script(
        httpx.Response(200, json=completion('```json\n{"category": "billing", "urgent": true}\n```'))
    )
    t = make(script).chat_json(MSG, Ticket)
    assert t == Ticket(category="billing", urgent=True)
    body = script.bodies()[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["category", "urgent"]
    assert body["temperature"] == 0.0 and "JSON" in body["messages"][0]["content"]


def test_chat_json_reasks_once_with_the_validation_error():
    script = Script(
        httpx.Response(200, json=completion('{"category": "billing"}')),
        httpx.Response(200, json=completion('{"category": "billing", "urgent": false}')),
    )
    m = make(script)
    assert m.chat_json(MSG, Ticket).urgent is False
    retry = script.bodies()[1]["messages"]
    assert retry[-2] == {"role": "assistant", "content": '{"category": "billing"}'}
    assert "urgent" in retry[-1]["content"] and "Field required" in retry[-1]["content"]
    assert m.ledger.totals("test").calls == 2


def test_chat_json_fails_clearly_after_two_bad_answers():
    script = Script(httpx.Response(200, json=completion("не знаю")))
    with pytest.raises(ModelError, match="does not match Ticket twice"):
        make(script).chat_json(MSG, Ticket)
    assert len(script.requests) == 2


@pytest.mark.parametrize(
    ("mode", "check"),
    [
        ("guided_json", lambda b: "guided_json" in b and "response_format" not in b),
        ("tgi", lambda b: b["response_format"]["type"] == "json_object" and "value" in b["response_format"]),
        ("json_object", lambda b: b["response_format"] == {"type": "json_object"}),
        ("prompt", lambda b: "response_format" not in b and "guided_json" not in b),
    ],
)
def test_structured_modes(mode: str, check: Callable[[dict], bool]):
    script = Script(httpx.Response(200, json=completion('{"category": "x", "urgent": false}')))
    make(script, structured=mode).chat_json(MSG, Ticket)
    assert check(script.bodies()[0])


# ---- tools -------------------------------------------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Погода в городе",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_native_tool_calls_round_trip():
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Москва"}'},
    }
    script = Script(
        httpx.Response(200, json=completion(None, tool_calls=[call])),  # type: ignore[arg-type]
        httpx.Response(200, json=completion("В Москве снег")),
    )
    m = make(script)
    r = m.chat(MSG, tools=TOOLS, tool_choice="auto")
    assert r.tool_calls[0].name == "get_weather" and r.tool_calls[0].arguments == {"city": "Москва"}
    follow = [*MSG, r.as_message(), tool_result(r.tool_calls[0], {"sky": "снег"})]
    assert m.chat(follow, tools=TOOLS).text == "В Москве снег"
    sent = script.bodies()[1]["messages"]
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": "c1",
        "name": "get_weather",
        "content": '{"sky": "снег"}',
    }
    assert script.bodies()[0]["tool_choice"] == "auto"


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "get_weather", "arguments": {"city": "Москва"}}',
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Москва"}}\n</tool_call>',
        '```json\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Москва\\"}"}\n```',
    ],
)
def test_tool_calls_left_in_text_are_recovered(text: str):
    calls, rest = _recover_tool_calls(text, TOOLS)
    assert [(c.name, c.arguments) for c in calls] == [("get_weather", {"city": "Москва"})]
    assert rest == ""


def test_unknown_tool_names_stay_text():
    text = '{"name": "rm_rf", "arguments": {}}'
    assert _recover_tool_calls(text, TOOLS) == ([], text)


# ---- presets and settings ----------------------------------------------------------------------


def test_presets_and_perimeter():
    assert set(PRESETS) >= {"vllm", "tgi", "ollama", "llamacpp", "cloudru", "gigachat"}
    assert PRESETS["cloudru"].external and PRESETS["gigachat"].external and not PRESETS["vllm"].external
    assert is_inside_perimeter("http://10.1.2.3:8000/v1") and is_inside_perimeter("http://vllm:8000/v1")
    assert not is_inside_perimeter("https://api.example.com/v1")


def test_chat_config_from_settings():
    cfg = chat_config(LLMSettings(provider="llamacpp"), base_url="http://127.0.0.1:5555/v1")
    assert cfg.base_url.endswith(":5555/v1") and not cfg.external and cfg.model == "local"
    cfg = chat_config(LLMSettings(provider="cloudru", model="qwen", api_key="k", price_in_per_1k=0.1))
    assert cfg.external and cfg.api_key == "k" and cfg.price_in_per_1k == 0.1
    assert chat_config(LLMSettings(provider="openai", base_url="https://x.example/v1", model="m")).external
    assert chat_config(LLMSettings(provider="tgi")).structured == "tgi"
    with pytest.raises(ConfigError, match="model name"):
        chat_config(LLMSettings(provider="vllm"))
    with pytest.raises(ConfigError, match="base_url"):
        chat_config(LLMSettings(provider="openai", model="m"))
    with pytest.raises(ConfigError, match="authorization key"):
        build_chat_model(LLMSettings(provider="gigachat"))


def test_llm_settings_from_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SPRAVKA_LLM__PROVIDER", "vllm")
    monkeypatch.setenv("SPRAVKA_LLM__BASE_URL", "http://10.0.0.5:8000/v1")
    monkeypatch.setenv("SPRAVKA_LLM__MODEL", "Qwen2.5-7B-Instruct")
    monkeypatch.setenv("SPRAVKA_LLM__API_KEY", "secret-token")
    llm = load_settings().llm
    assert llm.provider == "vllm" and "secret-token" not in repr(llm)
    m = build_chat_model(llm, transport=httpx.MockTransport(Script(httpx.Response(200, json=completion()))))
    assert isinstance(m, OpenAIChatModel) and m.config.api_key == "secret-token"


def test_privacy_guard_plugs_into_the_hooks():
    privacy = pytest.importorskip("spravka.privacy", reason="privacy guard not available")
    guard = privacy.PrivacyGuard(policy="mask", ner=False)
    seen: list[str] = []

    def echo(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        content = body["messages"][-1]["content"]
        seen.append(content)
        placeholder = content[content.index("[") : content.index("]") + 1]
        half = len(placeholder) // 2
        pieces = ["Записал: ", placeholder[:half], placeholder[half:], ", спасибо."]
        return sse(*(delta(p) for p in pieces), "[DONE]")

    config = ChatConfig(base_url=URL, model="m", name="cloud", external=True)
    m = OpenAIChatModel(
        config,
        transport=httpx.MockTransport(echo),
        ledger=UsageLedger(),
        before_send=guard.protect,
        after_receive=guard.restore,
    )
    items = list(m.stream([{"role": "user", "content": "Мой email ivan.petrov@example.ru, запишите."}]))
    assert "ivan.petrov@example.ru" not in seen[0]
    streamed = "".join(i for i in items if isinstance(i, str))
    assert streamed == items[-1].text == "Записал: ivan.petrov@example.ru, спасибо."
