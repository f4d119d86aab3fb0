"""One exception hierarchy for the whole platform.

Every error a user can trigger carries a message that says what went wrong and, where it helps,
what to do next. Interfaces (CLI, API, bots) map these classes to exit codes and HTTP statuses;
nothing below the interfaces prints or exits.
"""

from __future__ import annotations


class SpravkaError(Exception):
    """Base class. ``code`` is a stable machine-readable identifier."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ConfigError(SpravkaError):
    """Settings are invalid or point at something that does not exist."""

    code = "config"
    http_status = 500


class InputError(SpravkaError):
    """The caller sent something we cannot accept (bad filter, empty question, ...)."""

    code = "bad_input"
    http_status = 400


class NotFoundError(SpravkaError):
    code = "not_found"
    http_status = 404


class LoaderError(SpravkaError):
    """A file could not be turned into a document: corrupt, empty, wrong encoding, unsupported."""

    code = "load_failed"
    http_status = 422

    def __init__(self, message: str, *, reason: str = "unreadable", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        #: short stable reason code shown in per-document status: corrupt|empty|encoding|unsupported|too_large|unreadable
        self.reason = reason


class StoreError(SpravkaError):
    """The data directory or a backend failed (locked, corrupt, newer schema, unreachable)."""

    code = "store"
    http_status = 503


class SchemaVersionError(StoreError):
    code = "schema_version"


class ModelError(SpravkaError):
    """An embedding/LLM/reranker model failed to load or answer."""

    code = "model"
    http_status = 503


class ModelOutputError(ModelError):
    """The model answered, but not in the shape asked for (JSON that does not fit the schema)."""


class ModelUnavailableError(ModelError):
    """The model server is down, timed out, or the circuit breaker is open."""

    code = "model_unavailable"


class PrivacyError(SpravkaError):
    """Personal data would leave the perimeter and the policy says block."""

    code = "privacy_blocked"
    http_status = 422


class AuthError(SpravkaError):
    code = "unauthorized"
    http_status = 401


class ForbiddenError(SpravkaError):
    code = "forbidden"
    http_status = 403
