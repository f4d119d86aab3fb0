"""Prometheus metrics of one API process: requests, latencies per route and per pipeline stage,
answers by decision, refusals, LLM tokens and cost, rate-limited and unauthorised requests.

Each :class:`Metrics` has its own registry, so several apps in one process (tests) never clash.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("spravka_http_requests", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram("spravka_http_request_duration_seconds", "HTTP request duration (streams: to the end)",
                                 ["method", "route"], buckets=_LATENCY, registry=r)
        self.in_flight = Gauge("spravka_http_requests_in_flight", "HTTP requests being served", registry=r)
        self.stage = Histogram("spravka_stage_duration_seconds", "Time per pipeline stage (search and answer timings)",
                               ["operation", "stage"], buckets=_LATENCY, registry=r)
        self.answers = Counter("spravka_answers", "Answers by decision and mode", ["status", "mode"], registry=r)
        self.refusals = Counter("spravka_refusals", "Answers that were refusals or escalations", ["status"],
                                registry=r)
        self.searches = Counter("spravka_searches", "Searches served", registry=r)
        self.tokens = Counter("spravka_llm_tokens", "LLM tokens spent on answers", ["kind"], registry=r)
        self.cost = Counter("spravka_llm_cost", "LLM cost of answers (in llm.currency)", registry=r)
        self.rate_limited = Counter("spravka_rate_limited", "Requests refused with 429", registry=r)
        self.auth_failures = Counter("spravka_auth_failures", "Requests refused with 401/403", ["status"], registry=r)
        self.feedback = Counter("spravka_feedback", "Feedback on answers", ["rating"], registry=r)
        self.escalations = Counter("spravka_escalations", "Questions passed to an operator", registry=r)
        self.jobs = Counter("spravka_jobs", "Background jobs finished", ["kind", "state"], registry=r)
        self.errors = Counter("spravka_errors", "Errors by code", ["code"], registry=r)
        self.cache = Counter("spravka_answer_cache", "Answer cache lookups: hit (exact or semantic) or miss",
                             ["result", "match"], registry=r)
        self.cache_saved_calls = Counter("spravka_answer_cache_saved_llm_calls",
                                         "LLM calls not made thanks to the answer cache", registry=r)
        self.cache_saved_tokens = Counter("spravka_answer_cache_saved_tokens",
                                          "LLM tokens not spent thanks to the answer cache", registry=r)
        self.cache_saved_answers = Counter("spravka_answer_cache_saved_pipelines",
                                           "Answers served without retrieval and generation", registry=r)

    def observe_timings(self, operation: str, timings_ms: Mapping[str, float]) -> None:
        for name, ms in timings_ms.items():
            try:
                value = float(ms) / 1000.0
            except (TypeError, ValueError):
                continue
            stage = name[:-3] if name.endswith("_ms") else name
            self.stage.labels(operation, stage).observe(max(0.0, value))

    def observe_answer(self, answer) -> None:
        status, mode = str(answer.status), str(answer.mode)
        self.answers.labels(status, mode).inc()
        if status != "answered":
            self.refusals.labels(status).inc()
        self.observe_timings("answer", answer.timings_ms or {})
        for kind in ("prompt", "completion"):
            n = (answer.tokens or {}).get(kind)
            if n:
                self.tokens.labels(kind).inc(n)
        if answer.cost:
            self.cost.inc(answer.cost)
        c = getattr(answer, "cache", None) or {}
        if c.get("result") == "hit":
            self.cache.labels("hit", str(c.get("match", "exact"))).inc()
            self.cache_saved_answers.inc()
            self.cache_saved_calls.inc(int(c.get("saved_llm_calls", 0)))
            self.cache_saved_tokens.inc(int(c.get("saved_tokens", 0)))
        elif c.get("result") == "miss":
            self.cache.labels("miss", "").inc()

    def observe_search(self, result) -> None:
        self.searches.inc()
        self.observe_timings("search", result.timings_ms or {})

    def render(self) -> bytes:
        return generate_latest(self.registry)
