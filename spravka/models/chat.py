"""The ``ChatModel`` port and the one client behind it: OpenAI-compatible chat completions.

Every generation in Spravka goes through :class:`OpenAIChatModel`, whether the server is the local
llama.cpp model on loopback, vLLM/TGI/Ollama inside the perimeter, or a public cloud (Cloud.ru,
GigaChat through :mod:`spravka.models.gigachat`). Tests therefore exercise the production path.

The client is synchronous and thread-safe; what makes it safe to put in front of users:

* a whole-call time budget (``timeout_s``): a dead or silent server gives a clear
  :class:`ModelUnavailableError` within it, never a hang;
* retries with exponential backoff and jitter on connect errors, 5xx and 429 (``Retry-After`` is
  respected when it fits the budget);
* a concurrency limit (a semaphore) and a circuit breaker that fails fast while a server is down
  and lets one trial call through after the cool-down;
* token and cost accounting on every call, kept in a :class:`UsageLedger` per provider;
* a ``before_send`` / ``after_receive`` hook pair, where the privacy guard masks personal data
  before it leaves the perimeter and restores it in the answer.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

import httpx
from pydantic import BaseModel, ValidationError

from spravka.core.errors import ConfigError, ModelError, ModelOutputError, ModelUnavailableError, SpravkaError

#: one chat message in the OpenAI format: ``{"role": "user", "content": "..."}``
Message = dict[str, Any]
T = TypeVar("T", bound=BaseModel)

#: ``before_send(messages) -> (messages to send, context)``; the context goes to ``after_receive``
BeforeSend = Callable[[list[Message]], tuple[list[Message], Any]]
#: ``after_receive(text, context) -> text``; also applied to tool-call arguments and stream text
AfterReceive = Callable[[str, Any], str]

#: how ``chat_json`` asks the server for schema-constrained output
StructuredMode = Literal["json_schema", "guided_json", "tgi", "json_object", "prompt"]


@dataclass(frozen=True)
class ChatConfig:
    """Everything the client needs to talk to one server. Built from settings by ``providers``."""

    base_url: str
    model: str
    #: provider label: the key in the usage ledger and the name in error messages
    name: str = "openai"
    api_key: str | None = field(default=None, repr=False)
    #: budget for a whole non-streaming call, retries and backoff included; for a stream, the
    #: longest wait for the first byte and between two chunks
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    max_retries: int = 2
    max_concurrency: int = 4
    circuit_failures: int = 5
    circuit_cooldown_s: float = 30.0
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    currency: str = "RUB"
    #: outside the perimeter: the composition root wires the privacy guard into the hooks
    external: bool = False
    structured: StructuredMode = "json_schema"
    #: ask for usage in the last stream chunk (``stream_options.include_usage``)
    stream_usage: bool = True
    verify_tls: bool | str = True
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: merged into every request body (vendor parameters: ``top_k``, ``repetition_penalty``, ...)
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0

    def __post_init__(self) -> None:
        if not self.base_url or not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"LLM '{self.name}': base_url must be an http(s) URL, got {self.base_url!r}",
                hint="set llm.base_url (SPRAVKA_LLM__BASE_URL), e.g. http://127.0.0.1:8000/v1",
            )
        if self.timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ConfigError(f"LLM '{self.name}': timeouts must be positive")
        if self.max_concurrency < 1 or self.max_retries < 0 or self.circuit_failures < 1:
            raise ConfigError(f"LLM '{self.name}': max_concurrency/circuit_failures >= 1, max_retries >= 0")


@dataclass(frozen=True)
class Usage:
    prompt: int = 0
    completion: int = 0
    #: True when the server reported no usage and the numbers are a character-count estimate
    estimated: bool = False

    @property
    def total(self) -> int:
        return self.prompt + self.completion


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    #: parsed arguments; ``{}`` when the model produced invalid JSON (see ``raw_arguments``)
    arguments: dict[str, Any]
    raw_arguments: str = ""

    def to_openai(self) -> dict[str, Any]:
        raw = self.raw_arguments or json.dumps(self.arguments, ensure_ascii=False)
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": raw}}


@dataclass(frozen=True)
class ChatResult:
    text: str
    tool_calls: list[ToolCall]
    usage: Usage
    cost: float
    latency_ms: float
    model: str
    finish_reason: str | None
    provider: str = ""
    currency: str = "RUB"
    #: per-token log probabilities when requested (OpenAI ``choices[0].logprobs.content``)
    logprobs: list[dict[str, Any]] | None = None

    def as_message(self) -> Message:
        """The assistant turn to append to the conversation (for tool round trips)."""
        msg: Message = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            msg["tool_calls"] = [tc.to_openai() for tc in self.tool_calls]
        return msg


def tool_result(call: ToolCall, content: Any) -> Message:
    """The ``tool`` message that answers ``call``; non-strings are sent as JSON."""
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": call.id, "name": call.name, "content": text}


@runtime_checkable
class ChatModel(Protocol):
    """The LLM port. Adapters: :class:`OpenAIChatModel`, ``gigachat.GigaChatModel``."""

    name: str
    config: ChatConfig
    ledger: UsageLedger

    def chat(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        response_format: dict[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatResult: ...

    def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[str | ChatResult]: ...

    def chat_json(
        self,
        messages: Sequence[Message],
        schema: type[T],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        extra: Mapping[str, Any] | None = None,
    ) -> T: ...

    def ping(self) -> bool: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# accounting


@dataclass
class UsageTotals:
    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency_ms: float = 0.0
    currency: str = ""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageLedger:
    """Per-provider running totals of calls, tokens, cost and latency (in-process, thread-safe).

    Callers read it for dashboards and budgets; each :class:`ChatResult` also carries its own
    usage for the event log.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals: dict[str, UsageTotals] = {}

    def record(self, provider: str, result: ChatResult) -> None:
        with self._lock:
            t = self._totals.setdefault(provider, UsageTotals(currency=result.currency))
            t.calls += 1
            t.prompt_tokens += result.usage.prompt
            t.completion_tokens += result.usage.completion
            t.cost += result.cost
            t.latency_ms += result.latency_ms
            t.currency = result.currency

    def record_failure(self, provider: str) -> None:
        with self._lock:
            self._totals.setdefault(provider, UsageTotals()).failures += 1

    def totals(self, provider: str) -> UsageTotals:
        with self._lock:
            t = self._totals.get(provider, UsageTotals())
            return UsageTotals(**t.__dict__)

    def snapshot(self) -> dict[str, UsageTotals]:
        with self._lock:
            return {k: UsageTotals(**v.__dict__) for k, v in self._totals.items()}

    def reset(self) -> None:
        with self._lock:
            self._totals.clear()


#: the process-wide ledger clients use unless given their own
LEDGER = UsageLedger()


def approx_tokens(text: str) -> int:
    return max(1, round(len(text) / 3.6)) if text else 0


# --------------------------------------------------------------------------------------------
# circuit breaker


class CircuitBreaker:
    """Closed → (``failures`` consecutive failed calls) → open → (cool-down) → half-open.

    While open every call fails at once. Half-open lets exactly one trial call through: success
    closes the circuit, failure opens it for another cool-down.
    """

    def __init__(
        self, name: str, failures: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ):
        self.name = name
        self.failures = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self.last_error = ""

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        with self._lock:
            return self._state()

    def _state(self) -> Literal["closed", "open", "half_open"]:
        if self._opened_at is None:
            return "closed"
        if self._trial_in_flight or self._clock() - self._opened_at >= self.cooldown_s:
            return "half_open"
        return "open"

    def retry_in_s(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def before_call(self) -> None:
        """Raise :class:`ModelUnavailableError` when the call must not go out."""
        with self._lock:
            state = self._state()
            if state == "closed":
                return
            if state == "half_open" and not self._trial_in_flight:
                self._trial_in_flight = True  # this caller is the trial
                return
            left = max(0.0, self.cooldown_s - (self._clock() - (self._opened_at or 0.0)))
            at = (datetime.now() + timedelta(seconds=left)).strftime("%H:%M:%S")
            why = f"last error: {self.last_error}" if self.last_error else "server unavailable"
            if state == "half_open":
                msg = f"LLM '{self.name}' is unavailable ({why}); a trial call is in flight"
            else:
                msg = (
                    f"LLM '{self.name}' is unavailable after {self._consecutive} consecutive failures "
                    f"({why}); circuit open, next try in {left:.0f} s (at {at})"
                )
            raise ModelUnavailableError(msg, hint="check the model server; calls fail fast until then")

    def success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._opened_at = None
            self._trial_in_flight = False
            self.last_error = ""

    def failure(self, error: str) -> None:
        with self._lock:
            self._consecutive += 1
            self.last_error = error
            if self._trial_in_flight or self._consecutive >= self.failures:
                self._opened_at = self._clock()
            self._trial_in_flight = False

    def release(self) -> None:
        """The call ended without telling anything about the server (e.g. no concurrency slot)."""
        with self._lock:
            self._trial_in_flight = False


# --------------------------------------------------------------------------------------------
# the client


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIChatModel:
    """``POST {base_url}/chat/completions`` as served by llama.cpp, vLLM, TGI, Ollama, Cloud.ru, ...

    ``transport`` lets tests plug in ``httpx.MockTransport``; ``clock`` / ``sleep`` make backoff
    and the circuit breaker testable without waiting.
    """

    def __init__(
        self,
        config: ChatConfig,
        *,
        before_send: BeforeSend | None = None,
        after_receive: AfterReceive | None = None,
        ledger: UsageLedger | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.name = config.name
        self.before_send = before_send
        self.after_receive = after_receive
        self.ledger = ledger if ledger is not None else LEDGER
        self._clock = clock
        self._sleep = sleep
        self._base = config.base_url.rstrip("/")
        self._http = httpx.Client(
            transport=transport,
            verify=config.verify_tls,
            limits=httpx.Limits(max_connections=config.max_concurrency + 2),
            headers={"Accept": "application/json", **dict(config.headers)},
        )
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self.breaker = CircuitBreaker(config.name, config.circuit_failures, config.circuit_cooldown_s, clock)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self._base!r}, model={self.config.model!r})"

    # ---- public API -------------------------------------------------------------------------

    def chat(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        response_format: dict[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> ChatResult:
        """One completion. Raises ``ModelUnavailableError`` (server down, timeout, circuit open)
        or ``ModelError`` (the server refused the request or answered nonsense)."""
        sent, ctx = self._before(messages)
        payload = self._payload(
            sent,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            tools=tools,
            tool_choice=tool_choice,
            response_format=response_format,
            extra=extra,
            stream=False,
        )
        started = self._clock()
        deadline = started + self.config.timeout_s
        with self._guarded(deadline):
            resp = self._send(payload, deadline, stream=False)
            try:
                data = resp.json()
            except ValueError as e:
                raise ModelError(f"LLM '{self.name}' answered with invalid JSON: {resp.text[:200]!r}") from e
        result = self._parse_completion(data, payload, tools, ctx, (self._clock() - started) * 1000)
        self.ledger.record(self.name, result)
        return result

    def stream(
        self,
        messages: Sequence[Message],
        *,
        temperature: float = 0.2,
        max_tokens: int = 512,
        stop: Sequence[str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Iterator[str | ChatResult]:
        """Yield text deltas as the server sends them (SSE), then one final :class:`ChatResult`.

        Retries happen only before the first byte; a server that dies mid-stream raises
        ``ModelUnavailableError`` from the iterator. Closing the iterator early closes the request.
        """
        sent, ctx = self._before(messages)
        payload = self._payload(
            sent, temperature=temperature, max_tokens=max_tokens, stop=stop, extra=extra, stream=True
        )
        started = self._clock()
        deadline = started + self.config.timeout_s
        raw_parts: list[str] = []
        pending = ""  # received, not yet restored and yielded (only with after_receive)
        restored_parts: list[str] = []
        usage: Usage | None = None
        finish: str | None = None
        model = self.config.model
        with self._guarded(deadline):
            resp = self._send(payload, deadline, stream=True)
            try:
                for event in _sse_events(resp):
                    if "error" in event:
                        raise ModelError(f"LLM '{self.name}' stream error: {str(event['error'])[:300]}")
                    model = event.get("model") or model
                    if event.get("usage"):
                        usage = _usage(event["usage"])
                    for choice in event.get("choices") or []:
                        finish = choice.get("finish_reason") or finish
                        piece = (choice.get("delta") or {}).get("content") or ""
                        if not piece:
                            continue
                        raw_parts.append(piece)
                        if self.after_receive is None:
                            yield piece
                            continue
                        # Restore segment by segment, up to a point where no masked
                        # placeholder can still be arriving in pieces.
                        pending += piece
                        cut = _safe_cut(pending)
                        if cut:
                            restored = self.after_receive(pending[:cut], ctx)
                            pending = pending[cut:]
                            restored_parts.append(restored)
                            if restored:
                                yield restored
            except httpx.TimeoutException as e:
                raise ModelUnavailableError(
                    f"LLM '{self.name}' stopped sending for {self.config.timeout_s:g} s mid-stream"
                ) from e
            except httpx.HTTPError as e:
                raise ModelUnavailableError(f"LLM '{self.name}' stream broke: {_describe(e)}") from e
            finally:
                resp.close()
        raw = "".join(raw_parts)
        text = raw
        if self.after_receive is not None:
            tail = self.after_receive(pending, ctx) if pending else ""
            if tail:
                yield tail
            text = "".join(restored_parts) + tail
        if usage is None:
            usage = Usage(_prompt_estimate(payload["messages"]), approx_tokens(raw), estimated=True)
        result = self._result(text, [], usage, (self._clock() - started) * 1000, model, finish)
        self.ledger.record(self.name, result)
        yield result

    def chat_json(
        self,
        messages: Sequence[Message],
        schema: type[T],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        extra: Mapping[str, Any] | None = None,
    ) -> T:
        """A pydantic object from the model, constrained by the schema where the server can.

        Invalid output is sent back once with the validation error; a second failure raises
        ``ModelError``.
        """
        json_schema = schema.model_json_schema()
        msgs = _with_schema_instruction(list(messages), json_schema)
        response_format: dict[str, Any] | None = None
        body = dict(extra or {})
        mode = self.config.structured
        if mode == "json_schema":
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(schema), "schema": json_schema, "strict": True},
            }
        elif mode == "guided_json":
            body["guided_json"] = json_schema
        elif mode == "tgi":
            response_format = {"type": "json_object", "value": json_schema}
        elif mode == "json_object":
            response_format = {"type": "json_object"}

        error = ""
        for attempt in range(2):
            result = self.chat(
                msgs,
                temperature=temperature,
                max_tokens=max_tokens,
                response_format=response_format,
                extra=body,
            )
            try:
                return schema.model_validate(_extract_json(result.text))
            except (ValueError, ValidationError) as e:
                error = _short_error(e)
                if result.finish_reason == "length":
                    error += f" (the answer was cut at max_tokens={max_tokens})"
            if attempt == 0:
                msgs = [
                    *msgs,
                    {"role": "assistant", "content": result.text},
                    {
                        "role": "user",
                        "content": "Ответ не прошёл проверку по схеме: "
                        f"{error}\nВерни только исправленный JSON-объект, без пояснений.",
                    },
                ]
        raise ModelOutputError(
            f"LLM '{self.name}' returned output that does not match {schema.__name__} twice: {error}",
            hint="raise max_tokens, simplify the schema, or use a larger model",
        )

    def ping(self) -> bool:
        """True when the server answers ``GET {base_url}/models`` (no retries, connect timeout)."""
        try:
            r = self._http.get(
                f"{self._base}/models",
                headers=self._auth_headers(),
                timeout=httpx.Timeout(self.config.connect_timeout_s),
            )
        except (httpx.HTTPError, SpravkaError):
            return False
        return r.status_code < 500

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OpenAIChatModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- hooks for adapters (GigaChat) ------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    def _on_unauthorized(self) -> bool:
        """Called on a 401; return True to retry once with fresh credentials."""
        return False

    def _encode_messages(self, messages: list[Message]) -> list[Message]:
        return messages

    def _payload(
        self,
        messages: list[Message],
        *,
        temperature: float,
        max_tokens: int,
        stop: Sequence[str] | None = None,
        tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        response_format: dict[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        stream: bool,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": self._encode_messages(messages),
            "temperature": temperature,
            "max_tokens": max_tokens,
            **self.config.extra_body,
        }
        if stop:
            payload["stop"] = list(stop)
        if tools:
            payload["tools"] = list(tools)
            if tool_choice is not None:
                payload["tool_choice"] = tool_choice
        if response_format is not None:
            payload["response_format"] = response_format
        if stream:
            payload["stream"] = True
            if self.config.stream_usage:
                payload["stream_options"] = {"include_usage": True}
        if extra:
            payload.update(extra)
        return payload

    def _tool_calls(self, message: dict[str, Any]) -> list[ToolCall]:
        calls = []
        for i, tc in enumerate(message.get("tool_calls") or []):
            fn = tc.get("function") or {}
            calls.append(_tool_call(tc.get("id") or f"call_{i}", fn.get("name", ""), fn.get("arguments")))
        return calls

    # ---- internals ----------------------------------------------------------------------------

    def _before(self, messages: Sequence[Message]) -> tuple[list[Message], Any]:
        msgs = [dict(m) for m in messages]
        if not msgs:
            raise ModelError("chat needs at least one message")
        if self.before_send is None:
            return msgs, None
        return self.before_send(msgs)

    def _after(self, text: str, ctx: Any) -> str:
        return self.after_receive(text, ctx) if self.after_receive is not None and text else text

    @contextmanager
    def _guarded(self, deadline: float) -> Iterator[None]:
        """Circuit breaker, concurrency slot and failure accounting around one call."""
        self.breaker.before_call()
        wait = max(0.0, deadline - self._clock())
        if not self._slots.acquire(timeout=wait):
            self.breaker.release()
            raise ModelUnavailableError(
                f"LLM '{self.name}': all {self.config.max_concurrency} request slots stayed busy "
                f"for {self.config.timeout_s:g} s",
                hint="raise llm.max_concurrency or add model server capacity",
            )
        try:
            yield
        except ModelUnavailableError as e:
            self.breaker.failure(e.message)
            self.ledger.record_failure(self.name)
            raise
        except ModelError:
            self.breaker.success()  # the server answered: it is up, the request was at fault
            self.ledger.record_failure(self.name)
            raise
        except BaseException:
            self.breaker.release()
            raise
        else:
            self.breaker.success()
        finally:
            self._slots.release()

    def _send(self, payload: dict[str, Any], deadline: float, *, stream: bool) -> httpx.Response:
        """POST with retries inside the budget; returns a 2xx response (open when streaming)."""
        url = f"{self._base}/chat/completions"
        cfg = self.config
        attempt = 0
        reauthorised = False
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise ModelUnavailableError(f"LLM '{self.name}' gave no answer within {cfg.timeout_s:g} s")
            read = cfg.timeout_s if stream else remaining
            timeout = httpx.Timeout(
                connect=min(cfg.connect_timeout_s, remaining), read=read, write=read, pool=remaining
            )
            try:
                try:
                    headers = self._auth_headers()
                    request = self._http.build_request(
                        "POST", url, json=payload, headers=headers, timeout=timeout
                    )
                    resp = self._http.send(request, stream=stream)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as e:
                    raise _Retryable(_describe(e)) from e
                except httpx.TimeoutException as e:
                    raise ModelUnavailableError(
                        f"LLM '{self.name}' at {self._base} gave no answer within {cfg.timeout_s:g} s",
                        hint="the server accepts connections but does not respond; is it overloaded or stuck?",
                    ) from e
                except httpx.HTTPError as e:
                    raise _Retryable(_describe(e)) from e
                if resp.status_code < 400:
                    return resp
                if stream:
                    resp.read()
                resp.close()
                if resp.status_code == 401 and not reauthorised and self._on_unauthorized():
                    reauthorised = True
                    continue
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise _Retryable(
                        f"HTTP {resp.status_code}: {_error_text(resp)}",
                        _retry_after(resp.headers.get("Retry-After")),
                    )
                raise ModelError(
                    f"LLM '{self.name}' refused the request: HTTP {resp.status_code}: {_error_text(resp)}",
                    hint="check llm.model, llm.api_key and the request parameters",
                )
            except _Retryable as e:
                attempt += 1
                if attempt > cfg.max_retries:
                    raise ModelUnavailableError(
                        f"LLM '{self.name}' at {self._base} is unavailable after {attempt} attempt(s): {e}",
                        hint="is the model server running? (local: spravka models serve NAME)",
                    ) from None
                delay = (
                    e.retry_after
                    if e.retry_after is not None
                    else min(cfg.backoff_max_s, cfg.backoff_base_s * 2 ** (attempt - 1))
                    * (0.5 + random.random() / 2)
                )
                if delay >= deadline - self._clock():
                    raise ModelUnavailableError(
                        f"LLM '{self.name}' is unavailable: {e}; the next retry (in {delay:.1f} s) would "
                        f"exceed the {cfg.timeout_s:g} s budget"
                    ) from None
                self._sleep(delay)

    def _parse_completion(
        self,
        data: dict[str, Any],
        payload: dict[str, Any],
        tools: Sequence[dict[str, Any]] | None,
        ctx: Any,
        latency_ms: float,
    ) -> ChatResult:
        try:
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise ModelError(f"LLM '{self.name}' answered without choices: {str(data)[:200]}") from e
        text = message.get("content") or ""
        if isinstance(text, list):  # content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        calls = self._tool_calls(message)
        if tools and not calls:
            calls, text = _recover_tool_calls(text, tools)
        if calls and self.after_receive is not None:
            calls = [_tool_call(c.id, c.name, self._after(c.raw_arguments, ctx)) for c in calls]
        text = self._after(text, ctx)
        raw_usage = data.get("usage")
        usage = _usage(raw_usage) if isinstance(raw_usage, Mapping) and raw_usage else None
        if usage is None:
            usage = Usage(_prompt_estimate(payload["messages"]), approx_tokens(text), estimated=True)
        finish = choice.get("finish_reason")
        result = self._result(text, calls, usage, latency_ms, data.get("model") or self.config.model, finish)
        lp = choice.get("logprobs")
        content = lp.get("content") if isinstance(lp, Mapping) else None
        return dataclasses.replace(result, logprobs=content) if isinstance(content, list) else result

    def _result(
        self,
        text: str,
        calls: list[ToolCall],
        usage: Usage,
        latency_ms: float,
        model: str,
        finish: str | None,
    ) -> ChatResult:
        cfg = self.config
        cost = usage.prompt / 1000 * cfg.price_in_per_1k + usage.completion / 1000 * cfg.price_out_per_1k
        return ChatResult(
            text=text,
            tool_calls=calls,
            usage=usage,
            cost=round(cost, 8),
            latency_ms=round(latency_ms, 1),
            model=model,
            finish_reason=finish,
            provider=self.name,
            currency=cfg.currency,
        )


# --------------------------------------------------------------------------------------------
# helpers


def _describe(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, httpx.ConnectError) and "refused" in text.lower():
        return "connection refused"
    return f"{type(e).__name__}: {text}"[:300]


def _error_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except (ValueError, httpx.ResponseNotRead):
        try:
            return resp.text[:300]
        except httpx.ResponseNotRead:
            return ""
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message") or err
    return str(err)[:300]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _usage(u: Mapping[str, Any]) -> Usage:
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))


def _prompt_estimate(messages: Sequence[Message]) -> int:
    return sum(approx_tokens(str(m.get("content") or "")) + 4 for m in messages)


#: longest masked placeholder the stream holds back for (``[PERSON_12]``, ``ORG_3``)
_MAX_PLACEHOLDER = 40


def _safe_cut(text: str) -> int:
    """How much of streamed ``text`` can be restored now: up to the last whitespace, but never
    past an unclosed ``[`` that may open a placeholder (``[PERSON 1]`` may hold a space)."""
    cut = max(text.rfind(" "), text.rfind("\n"))
    if cut <= 0:
        return 0
    bracket = text.rfind("[")
    if bracket > text.rfind("]") and len(text) - bracket <= _MAX_PLACEHOLDER:
        cut = min(cut, bracket)
    return max(cut, 0)


def _sse_events(resp: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in resp.iter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            yield json.loads(data)
        except ValueError:
            continue


def _tool_call(call_id: str, name: str, arguments: Any) -> ToolCall:
    if isinstance(arguments, dict):
        return ToolCall(call_id, name, arguments, json.dumps(arguments, ensure_ascii=False))
    raw = arguments or ""
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {}
    return ToolCall(call_id, name, parsed if isinstance(parsed, dict) else {"value": parsed}, raw)


_TOOL_TAG = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def _recover_tool_calls(text: str, tools: Sequence[dict[str, Any]]) -> tuple[list[ToolCall], str]:
    """Tool calls that the server left in the text (small models, servers without a tool parser).

    Accepts Hermes/Qwen ``<tool_call>{...}</tool_call>`` blocks or a bare
    ``{"name": ..., "arguments": {...}}`` object, and only names of the tools offered.
    """
    names = {(t.get("function") or {}).get("name") for t in tools}
    candidates = _TOOL_TAG.findall(text) or [text]
    calls: list[ToolCall] = []
    rest = text
    for chunk in candidates:
        try:
            obj, span = _first_json_object(chunk)
        except ValueError:
            continue
        if not isinstance(obj, dict) or obj.get("name") not in names:
            continue
        args = obj.get("arguments", obj.get("parameters", {}))
        calls.append(_tool_call(f"call_{len(calls)}", obj["name"], args))
        rest = rest.replace(chunk[span[0] : span[1]], "", 1)
    if not calls:
        return [], text
    rest = _TOOL_TAG.sub("", rest)
    rest = re.sub(r"```(?:json)?\s*```", "", rest).strip()
    return calls, rest


def _first_json_object(text: str) -> tuple[Any, tuple[int, int]]:
    decoder = json.JSONDecoder()
    for m in re.finditer(r"[{\[]", text):
        try:
            obj, end = decoder.raw_decode(text, m.start())
        except ValueError:
            continue
        return obj, (m.start(), end)
    raise ValueError("no JSON object in the model output")


def _extract_json(text: str) -> Any:
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.S)
    candidate = fenced.group(1) if fenced else text
    try:
        return json.loads(candidate)
    except ValueError:
        return _first_json_object(candidate)[0]


def _schema_name(schema: type[BaseModel]) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64] or "answer"


def _with_schema_instruction(messages: list[Message], json_schema: dict[str, Any]) -> list[Message]:
    note = "Отвечай только JSON-объектом, без пояснений и без markdown. JSON-схема ответа:\n" + json.dumps(
        json_schema, ensure_ascii=False
    )
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        return [{**messages[0], "content": messages[0]["content"] + "\n\n" + note}, *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def _short_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        parts = [
            f"{'.'.join(str(x) for x in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()[:5]
        ]
        return "; ".join(parts)
    return str(e)[:300]
