"""Loaders turn one file into documents. One module per family of formats; :func:`load_file`
picks by extension and wraps every failure into a :class:`LoaderError` with a reason code."""

from spravka.ingest.loaders.base import LoadResult, RawDoc, format_of, load_file, supported_extensions

__all__ = ["LoadResult", "RawDoc", "format_of", "load_file", "supported_extensions"]
