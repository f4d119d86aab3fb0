"""Structured extraction: invoices, contracts, receipts (or your own schema) to checked JSON."""

from spravka.extract.checks import Issue
from spravka.extract.schema import Schema, builtin_names, describe_builtin, load_schema
from spravka.extract.service import ExtractionResult, Extractor

__all__ = ["ExtractionResult", "Extractor", "Issue", "Schema", "builtin_names", "describe_builtin", "load_schema"]
