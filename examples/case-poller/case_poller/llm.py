"""Case summaries from the local LLM, through openai-python (OpenAI-compatible /v1).

openai-python retries by itself: connection errors, timeouts, 408/409/429 and 5xx, with its
own backoff, honouring Retry-After, and marking each resend (x-stainless-retry-count, the
same Idempotency-Key). We keep that and bound it: `llm_max_retries` retries per call, each
attempt with a connect and a read timeout.
"""

from __future__ import annotations

import logging

import openai

from .config import Settings

log = logging.getLogger("case-poller.llm")

SYSTEM_PROMPT = "Summarise this patient case for a clinician in two sentences."

# The model's context is ~8k tokens: a very long Description is cut before it is sent.
MAX_PROMPT_DESCRIPTION_CHARS = 12000
MAX_SUMMARY_TOKENS = 200


class LlmUnavailable(Exception):
    """The model did not answer (down, overloaded, too slow) after the SDK's retries.
    Nothing else will get through either: stop asking for this poll."""


class LlmRefused(Exception):
    """The model answered, but not with a usable summary (4xx, empty answer). Other cases
    may still work."""


class Summariser:
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

    def summarise(self, subject: str, description: str) -> str:
        if len(description) > MAX_PROMPT_DESCRIPTION_CHARS:
            description = description[:MAX_PROMPT_DESCRIPTION_CHARS] + " [...]"
        case_text = f"Subject: {subject or '(none)'}\n\nDescription:\n{description or '(none)'}"
        try:
            completion = self.client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": case_text},
                ],
                max_tokens=MAX_SUMMARY_TOKENS,
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
            raise LlmRefused(f"empty summary (finish_reason {completion.choices[0].finish_reason})")
        return text
