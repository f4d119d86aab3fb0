"""Escalations: a question handed over to a person.

An escalation is an inbox item of type ``escalation`` (the built-in operator queue of the admin
console) holding the question, the conversation, the retrieved chunks and the user's contact. It
is created when an answer has status ``escalate`` (refused while escalation is on) or when the
user asks for a human, once per answer id. Outside targets (Jira Service Management, Zendesk, a
webhook) each get an outbox message in the same transaction, sent by the dispatcher with
retries and an idempotency key. The operator's answer goes back through the channel the
question came from: the widget polls ``GET /v1/escalations/{id}``, a Telegram chat gets an
outbox message to ``telegram:<chat_id>``.
"""

from spravka.escalate.service import Escalations
from spravka.escalate.targets import JiraSender, ZendeskSender

__all__ = ["Escalations", "JiraSender", "ZendeskSender"]
