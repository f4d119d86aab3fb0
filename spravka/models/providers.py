"""Provider presets: what differs between OpenAI-compatible servers, in one table.

Settings (``[llm]`` in spravka.toml, ``SPRAVKA_LLM__*``) pick a provider and override any field;
unset fields come from the preset. :func:`build_chat_model` is what the composition root calls.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from spravka.core.errors import ConfigError
from spravka.models.chat import (
    AfterReceive,
    BeforeSend,
    ChatConfig,
    ChatModel,
    OpenAIChatModel,
    StructuredMode,
    UsageLedger,
)

if TYPE_CHECKING:
    from spravka.core.settings import LLMSettings


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    #: None: the user must set ``llm.base_url`` (or the local server provides it)
    base_url: str | None
    #: None: the user must set ``llm.model``
    model: str | None
    #: None: decided from the URL (loopback/private addresses are inside the perimeter)
    external: bool | None
    structured: StructuredMode = "json_schema"
    stream_usage: bool = True
    extra_body: Mapping[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "llamacpp",
            "llama.cpp server (local GGUF; `spravka models serve`); JSON schema via response_format",
            "http://127.0.0.1:8080/v1",
            "local",
            external=False,
        ),
        Preset(
            "vllm",
            "vLLM OpenAI server; response_format json_schema (vLLM >= 0.6), or structured=guided_json",
            "http://127.0.0.1:8000/v1",
            None,
            external=False,
        ),
        Preset(
            "tgi",
            "Hugging Face TGI Messages API; schema via TGI's response_format {type: json_object, value}",
            "http://127.0.0.1:8080/v1",
            "tgi",
            external=False,
            structured="tgi",
        ),
        Preset(
            "ollama",
            "Ollama's OpenAI-compatible endpoint",
            "http://127.0.0.1:11434/v1",
            None,
            external=False,
        ),
        Preset(
            "openai",
            "any OpenAI-compatible server; external unless the URL is loopback or a private address",
            None,
            None,
            external=None,
        ),
        Preset(
            "cloudru",
            "Cloud.ru Evolution Foundation Models (public cloud, OpenAI-compatible, API key)",
            "https://foundation-models.api.cloud.ru/v1",
            None,
            external=True,
        ),
        Preset(
            "gigachat",
            "Sber GigaChat (public cloud): OAuth token from the authorization key, then chat",
            "https://gigachat.devices.sberbank.ru/api/v1",
            "GigaChat",
            external=True,
            structured="prompt",
        ),
    )
}


def is_inside_perimeter(url: str) -> bool:
    """Loopback, private and link-local addresses, ``localhost`` and single-label/.local hosts."""
    host = (urlsplit(url).hostname or "").lower()
    if host in {"localhost"} or host.endswith((".local", ".internal", ".lan")) or (host and "." not in host):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


def chat_config(llm: LLMSettings, *, base_url: str | None = None) -> ChatConfig:
    """Settings plus preset → the client's config. ``base_url`` overrides both (local server)."""
    preset = PRESETS.get(llm.provider)
    if preset is None:  # pragma: no cover - settings validate the literal
        raise ConfigError(f"unknown LLM provider {llm.provider!r}", hint=f"one of: {', '.join(PRESETS)}")
    url = base_url or llm.base_url or preset.base_url
    if not url:
        raise ConfigError(
            f"LLM provider '{preset.name}' needs a base_url",
            hint="set llm.base_url (SPRAVKA_LLM__BASE_URL), e.g. http://10.0.0.5:8000/v1",
        )
    model = llm.model or preset.model
    if not model:
        raise ConfigError(
            f"LLM provider '{preset.name}' needs a model name",
            hint="set llm.model (SPRAVKA_LLM__MODEL) to the name the server serves",
        )
    external = llm.external if llm.external is not None else preset.external
    if external is None:
        external = not is_inside_perimeter(url)
    return ChatConfig(
        base_url=url,
        model=model,
        name=preset.name,
        api_key=llm.api_key.get_secret_value() if llm.api_key else None,
        timeout_s=llm.timeout_s,
        connect_timeout_s=llm.connect_timeout_s,
        max_retries=llm.max_retries,
        max_concurrency=llm.max_concurrency,
        circuit_failures=llm.circuit_failures,
        circuit_cooldown_s=llm.circuit_cooldown_s,
        price_in_per_1k=llm.price_in_per_1k,
        price_out_per_1k=llm.price_out_per_1k,
        currency=llm.currency,
        external=external,
        structured=llm.structured or preset.structured,
        stream_usage=preset.stream_usage,
        verify_tls=llm.verify_tls,
        extra_body=dict(preset.extra_body),
    )


def build_chat_model(
    llm: LLMSettings,
    *,
    base_url: str | None = None,
    before_send: BeforeSend | None = None,
    after_receive: AfterReceive | None = None,
    ledger: UsageLedger | None = None,
    transport: httpx.BaseTransport | None = None,
) -> ChatModel:
    """The ``ChatModel`` for these settings. Wire the privacy guard into the hooks when
    ``model.config.external`` is true; for ``llamacpp`` without a base_url, start
    :class:`spravka.models.local.LocalModelServer` first and pass its ``base_url``."""
    config = chat_config(llm, base_url=base_url)
    hooks: dict[str, Any] = {
        "before_send": before_send,
        "after_receive": after_receive,
        "ledger": ledger,
        "transport": transport,
    }
    if llm.provider == "gigachat":
        from spravka.models.gigachat import GigaChatModel

        if not config.api_key:
            raise ConfigError(
                "GigaChat needs its authorization key",
                hint="set llm.api_key (SPRAVKA_LLM__API_KEY): the base64 'Authorization key' from the Studio",
            )
        return GigaChatModel(config, auth_url=llm.auth_url, scope=llm.scope, **hooks)
    return OpenAIChatModel(config, **hooks)
