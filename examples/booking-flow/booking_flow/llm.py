"""The visit preparation paragraph, from the local LLM through openai-python.

Best effort: any failure (down, overloaded, too slow, refused, empty) is None, and the
booking goes ahead without Visit_Prep__c. openai-python retries by itself (connection
errors, timeouts, 408/409/429/5xx, with backoff and Retry-After); we allow it one retry and
cut each attempt's timeout to what the API request can spare.
"""

from __future__ import annotations

import logging
from typing import Optional

import openai

from . import context
from .config import Settings

log = logging.getLogger("booking-flow.llm")

SYSTEM_PROMPT = (
    "You help a hospital front desk prepare patients for a visit. Write one short paragraph "
    "(at most 80 words) of practical preparation for the appointment below: what to bring, "
    "when to arrive, what to expect. No diagnosis, no medical advice."
)
MAX_TOKENS = 160
MAX_PREP_CHARS = 32000  # Visit_Prep__c's length
MIN_LLM_TIME = 0.5  # less than this to spare: do not ask at all


class VisitPrep:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = openai.OpenAI(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout=openai.Timeout(settings.llm_read_timeout, connect=settings.llm_connect_timeout),
            max_retries=settings.llm_max_retries,
        )

    def close(self) -> None:
        self.client.close()

    def prepare(self, *, first_name: str, practitioner: str, start: str, end: str) -> Optional[str]:
        """One paragraph, or None (logged) when the model cannot give us one in time."""
        spare = context.remaining() - self.settings.llm_reserve
        if spare < MIN_LLM_TIME:
            log.warning("no time left for the visit preparation; booking without it")
            return None
        # Both attempts (openai's retry included) must fit in what we can spare.
        per_attempt = min(self.settings.llm_read_timeout, spare / (self.settings.llm_max_retries + 1))
        headers = {}
        tp = context.child_traceparent()
        if tp:
            headers["traceparent"] = tp
        appointment = (
            f"Patient first name: {first_name or '(not given)'}\n"
            f"Practitioner: {practitioner}\n"
            f"Appointment: {start} to {end} (UTC)"
        )
        try:
            completion = self.client.with_options(
                timeout=openai.Timeout(per_attempt, connect=min(self.settings.llm_connect_timeout, per_attempt)),
            ).chat.completions.create(
                model=self.settings.llm_model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": appointment},
                ],
                max_tokens=MAX_TOKENS,
                temperature=0.3,
                extra_headers=headers or None,
            )
        except openai.APIStatusError as exc:
            log.warning("LLM answered HTTP %d; booking without a visit preparation", exc.status_code)
            return None
        except openai.OpenAIError as exc:  # connection errors, timeouts, unparsable answers
            log.warning("LLM unavailable (%s); booking without a visit preparation", type(exc).__name__)
            return None
        if not completion.choices:
            log.warning("LLM answered no choices; booking without a visit preparation")
            return None
        text = (completion.choices[0].message.content or "").strip()
        if not text:
            log.warning("LLM answered an empty text (finish_reason %s); booking without a visit preparation",
                        completion.choices[0].finish_reason)
            return None
        return text[:MAX_PREP_CHARS]
