"""Delivery to outside systems through the outbox: persisted first, sent with retries."""

from spravka.delivery.dispatcher import DeliveryError, DispatchReport, OutboxDispatcher

__all__ = ["DeliveryError", "DispatchReport", "OutboxDispatcher"]
