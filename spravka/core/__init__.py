"""Core: types, errors, settings and Russian-aware text processing. Imports nothing above it."""
