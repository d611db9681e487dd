"""Post-visit follow-up instructions from the local LLM, through openai-python (OpenAI-compatible /v1).

openai-python retries by itself: connection errors, timeouts, 408/409/429 and 5xx, with its
own backoff, honouring Retry-After. We keep that and bound it: `llm_max_retries` retries per
call, each attempt with a connect and a read timeout. The client is shared by the batch's
worker threads (openai-python's client is thread-safe).

What the model sees: the appointment's subject and date, nothing else about the patient.
"""

from __future__ import annotations

import logging

import openai

from .config import Settings

log = logging.getLogger("followup-batch.llm")

SYSTEM_PROMPT = (
    "You write short post-visit follow-up instructions for a patient after a clinic "
    "appointment, in plain language, at most four sentences: what to watch for, when to book "
    "the next visit, and to call the clinic if symptoms get worse. Do not diagnose and do not "
    "change medication."
)
MAX_TOKENS = 160
MAX_SUBJECT_CHARS = 500


class LlmUnavailable(Exception):
    """The model did not answer (down, overloaded, too slow) after the SDK's retries.
    Nothing else will get through either: stop asking for this batch."""


class LlmRefused(Exception):
    """The model answered, but not with usable text (4xx, empty answer). Other appointments
    may still work."""


class FollowUpWriter:
    def __init__(self, settings: Settings) -> None:
        self.model = settings.llm_model
        self.client = openai.OpenAI(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            timeout=openai.Timeout(settings.llm_read_timeout, connect=settings.llm_connect_timeout),
            max_retries=settings.llm_max_retries,
        )

    def close(self) -> None:
        self.client.close()

    def instructions(self, subject: str, when: str) -> str:
        subject = (subject or "(no subject)")[:MAX_SUBJECT_CHARS]
        prompt = f"Appointment: {subject}\nDate: {when or 'unknown'}\n\nWrite the follow-up instructions."
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": prompt},
                ],
                max_tokens=MAX_TOKENS,
                temperature=0.2,
            )
        except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as exc:
            # APIConnectionError includes APITimeoutError.
            raise LlmUnavailable(f"{type(exc).__name__}: {exc}") from None
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409, 429):
                raise LlmUnavailable(f"HTTP {exc.status_code}: {exc}") from None
            raise LlmRefused(f"HTTP {exc.status_code}: {exc}") from None
        except openai.OpenAIError as exc:  # e.g. an answer we could not parse
            raise LlmRefused(f"{type(exc).__name__}: {exc}") from None
        if not completion.choices:
            raise LlmRefused("the model answered with no choices")
        text = (completion.choices[0].message.content or "").strip()
        if not text:
            raise LlmRefused(f"empty answer (finish_reason {completion.choices[0].finish_reason})")
        return text
