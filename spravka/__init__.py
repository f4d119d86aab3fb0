"""Spravka: an on-premise GenAI platform. Knowledge-base assistant first."""

__version__ = "0.1.0"
