"""Deliberately broken builds of the service, chosen by ZOO_VARIANT.

Each variant switches off exactly one safeguard; everything else stays as in `correct`.
They exist so that crashcart's checkers can be tested against realistic mistakes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Variant:
    name: str = "correct"
    # Salesforce session: re-login once (single flight) on INVALID_SESSION_ID.
    relogin_on_expiry: bool = True
    # Sleep between retries (capped exponential with jitter).
    backoff: bool = True
    # Wait at least what Retry-After asks for (and let openai-python do so as well).
    honour_retry_after: bool = True
    # Delete the Event of a booking that is answered as failed.
    compensate: bool = True
    # Write the Event by upsert on Booking_Key__c (False: POST a new Event and retry it).
    idempotent_create: bool = True
    # Connect/read timeouts on every dependency call.
    timeouts: bool = True
    # At most MAX_ATTEMPTS per call (False: retry until the request deadline).
    bounded_retries: bool = True
    # Circuit breakers on Salesforce and the LLM.
    breakers: bool = True
    # Patient sync with If-Match and a re-read on 412 (False: blind PATCH).
    conditional_sync: bool = True


VARIANTS: dict[str, Variant] = {
    "correct": Variant(),
    "no-refresh": Variant(name="no-refresh", relogin_on_expiry=False),
    "no-backoff": Variant(name="no-backoff", backoff=False),
    "ignore-retry-after": Variant(name="ignore-retry-after", honour_retry_after=False),
    "no-compensation": Variant(name="no-compensation", compensate=False),
    "non-idempotent-create": Variant(name="non-idempotent-create", idempotent_create=False),
    "no-timeout": Variant(name="no-timeout", timeouts=False),
    "unbounded-retries": Variant(name="unbounded-retries", bounded_retries=False),
    "no-breaker": Variant(name="no-breaker", breakers=False),
    "blind-overwrite": Variant(name="blind-overwrite", conditional_sync=False),
}


def from_env() -> Variant:
    name = os.environ.get("ZOO_VARIANT", "correct").strip() or "correct"
    try:
        return VARIANTS[name]
    except KeyError:
        raise SystemExit(f"unknown ZOO_VARIANT {name!r}; known: {', '.join(VARIANTS)}") from None


__all__ = ["Variant", "VARIANTS", "from_env", "replace"]
