"""Ticket classification and routing.

A taxonomy (categories, descriptions, examples, routing) as data; classifiers behind one
interface (kNN over labelled examples, logistic regression on embeddings and on TF-IDF, a
calibrated ensemble of them, the LLM with constrained output); routing rules as data; a human
triage queue for unsure tickets; corrections that become examples at once.

The application reaches it as ``app.classifier`` (:class:`TicketClassifier`).
"""

from spravka.classify.service import TicketClassifier
from spravka.classify.taxonomy import Taxonomy
from spravka.classify.types import Candidate, Classification, Neighbour, RouteDecision

__all__ = ["Candidate", "Classification", "Neighbour", "RouteDecision", "Taxonomy", "TicketClassifier"]
