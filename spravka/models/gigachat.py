"""GigaChat (Sber) behind the same ``ChatModel`` port.

Two differences from a plain OpenAI-compatible server, and only these live here:

* **OAuth.** The *authorization key* (base64 of client id and secret) buys a 30-minute access
  token: ``POST {auth_url}`` with ``Authorization: Basic <key>``, a fresh ``RqUID`` and
  ``scope=GIGACHAT_API_PERS|B2B|CORP``. The token is cached until shortly before it expires and
  refreshed on a 401.
* **Functions.** GigaChat speaks the older ``functions`` / ``function_call`` dialect; tools and
  tool results are translated both ways so callers use the OpenAI shapes throughout.

GigaChat is outside the perimeter (``external=True``): the composition root wires the privacy guard
into ``before_send`` / ``after_receive``. Its TLS certificate is issued by the Russian Ministry of
Digital Development CA; point ``llm.verify_tls`` at that bundle.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx

from spravka.core.errors import ConfigError, ModelUnavailableError
from spravka.models.chat import ChatConfig, Message, OpenAIChatModel, ToolCall, _describe, _tool_call

DEFAULT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
DEFAULT_SCOPE = "GIGACHAT_API_PERS"
#: refresh this long before the token's stated expiry
_EXPIRY_MARGIN_S = 60.0


class GigaChatModel(OpenAIChatModel):
    def __init__(
        self,
        config: ChatConfig,
        *,
        auth_url: str | None = None,
        scope: str | None = None,
        wall_clock: Callable[[], float] = time.time,
        **kwargs: Any,
    ) -> None:
        super().__init__(config, **kwargs)
        if not config.api_key:
            raise ConfigError("GigaChat needs its authorization key (llm.api_key)")
        self.auth_url = auth_url or DEFAULT_AUTH_URL
        self.scope = scope or DEFAULT_SCOPE
        self._wall = wall_clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_lock = threading.Lock()
        #: how many tokens were fetched (tests and diagnostics)
        self.token_fetches = 0

    # ---- OAuth ------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._access_token()}"}

    def _on_unauthorized(self) -> bool:
        with self._token_lock:
            self._token = None
        return True

    def _access_token(self) -> str:
        with self._token_lock:
            if self._token and self._wall() < self._expires_at - _EXPIRY_MARGIN_S:
                return self._token
            self._token, self._expires_at = self._fetch_token()
            self.token_fetches += 1
            return self._token

    def _fetch_token(self) -> tuple[str, float]:
        headers = {
            "Authorization": f"Basic {self.config.api_key}",
            "RqUID": str(uuid.uuid4()),
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        try:
            r = self._http.post(
                self.auth_url,
                data={"scope": self.scope},
                headers=headers,
                timeout=httpx.Timeout(self.config.timeout_s, connect=self.config.connect_timeout_s),
            )
        except httpx.HTTPError as e:
            raise ModelUnavailableError(
                f"GigaChat OAuth at {self.auth_url} is unreachable: {_describe(e)}"
            ) from e
        if r.status_code in (400, 401, 403):
            raise ConfigError(
                f"GigaChat OAuth refused the authorization key (HTTP {r.status_code}): {r.text[:200]}",
                hint="check llm.api_key (the base64 authorization key) and llm.scope",
            )
        if r.status_code >= 300:
            raise ModelUnavailableError(f"GigaChat OAuth answered HTTP {r.status_code}: {r.text[:200]}")
        try:
            data = r.json()
            token = data.get("access_token") or data["tok"]
            expires = float(data.get("expires_at") or data.get("exp") or 0)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelUnavailableError(f"GigaChat OAuth answered without a token: {r.text[:200]}") from e
        if expires > 1e11:  # milliseconds since the epoch
            expires /= 1000
        if expires <= 0:
            expires = self._wall() + 25 * 60
        return token, expires

    # ---- functions dialect ---------------------------------------------------------------------

    def _encode_messages(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        names: dict[str, str] = {}
        for m in messages:
            role = m.get("role")
            if role == "assistant" and m.get("tool_calls"):
                call = m["tool_calls"][0]["function"]
                names[m["tool_calls"][0].get("id", "")] = call["name"]
                args = call.get("arguments") or "{}"
                out.append(
                    {
                        "role": "assistant",
                        "content": m.get("content") or "",
                        "function_call": {
                            "name": call["name"],
                            "arguments": json.loads(args) if isinstance(args, str) else args,
                        },
                    }
                )
            elif role == "tool":
                name = m.get("name") or names.get(m.get("tool_call_id", ""), "")
                out.append({"role": "function", "name": name, "content": m.get("content") or ""})
            else:
                out.append({k: v for k, v in m.items() if k in ("role", "content")})
        return out

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
        # GigaChat knows neither stop sequences, response_format nor stream_options.
        payload: dict[str, Any] = {
            "model": self.config.model,
            "messages": self._encode_messages(messages),
            "max_tokens": max_tokens,
            **self.config.extra_body,
        }
        if temperature > 0:  # GigaChat rejects 0; leaving it out gives its greedy default
            payload["temperature"] = temperature
        if tools:
            payload["functions"] = [t["function"] for t in tools if t.get("type", "function") == "function"]
            if isinstance(tool_choice, dict):
                payload["function_call"] = {"name": tool_choice.get("function", {}).get("name")}
            elif tool_choice in ("none", "auto"):
                payload["function_call"] = tool_choice
            elif tool_choice == "required":
                payload["function_call"] = "auto"
        if stream:
            payload["stream"] = True
        if extra:
            payload.update(extra)
        return payload

    def _tool_calls(self, message: dict[str, Any]) -> list[ToolCall]:
        fc = message.get("function_call")
        if fc:
            call_id = message.get("functions_state_id") or "call_0"
            return [_tool_call(call_id, fc.get("name", ""), fc.get("arguments"))]
        return super()._tool_calls(message)
