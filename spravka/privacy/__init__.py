"""In-perimeter privacy guard (152-FZ): find, mask, block and restore personal data.

The LLM gateway calls :class:`PrivacyGuard` before any request to a provider marked external::

    guard = PrivacyGuard(policy="mask")
    masked, vault = guard.protect(messages)      # «[ФИО_1]», «[СНИЛС_1]», ...
    reply = guard.restore(model_reply, vault)    # values back in the reply
"""

from spravka.privacy.detection import DEFAULT_MIN_CONFIDENCE, find_pii
from spravka.privacy.findings import Finding, resolve_overlaps
from spravka.privacy.guard import Policy, PrivacyGuard, Report, mask_text
from spravka.privacy.kinds import DEFAULT_KINDS, PiiKind
from spravka.privacy.ner import NerDetector
from spravka.privacy.vault import Vault

__all__ = [
    "DEFAULT_KINDS",
    "DEFAULT_MIN_CONFIDENCE",
    "Finding",
    "NerDetector",
    "PiiKind",
    "Policy",
    "PrivacyGuard",
    "Report",
    "Vault",
    "find_pii",
    "mask_text",
    "resolve_overlaps",
]
