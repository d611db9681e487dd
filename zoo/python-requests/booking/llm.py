"""The local LLM through openai-python (OpenAI-compatible endpoint).

Retries: openai-python retries by itself (408/409/429/5xx, timeouts, connection errors),
honours Retry-After (up to 2 minutes) and marks each resend with `x-stainless-retry-count`
and the same Idempotency-Key. We keep that, deliberately limited to ONE retry per call
(`max_retries=1`, i.e. two attempts at most) so that a call fits our request budget.

Breaker: our circuit breaker sits in the httpx transport under the openai client, so it sees
every attempt, including the ones openai-python makes on its own. When it is open the
transport refuses the attempt with an OpenAIError subclass, which openai-python passes on
at once without retrying (it never retries its own errors).

Timeouts: each call gets a read timeout no longer than what the request budget allows.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Optional

import httpx2
import openai

from .config import Settings
from .resilience import BreakerOpen, CircuitBreaker, RetryPolicy, remaining_budget, sleep_within_budget, DeadlineExceeded
from .variants import Variant

log = logging.getLogger("booking.llm")

NOTE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "questions": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "questions"],
    "additionalProperties": False,
}


class LlmUnavailable(Exception):
    """No usable answer from the model (down, overloaded, too slow, cut, or unusable)."""


class BreakerRefused(openai.OpenAIError):
    """Raised inside the transport when the LLM breaker is open (openai-python does not retry it)."""


class GuardedTransport(httpx2.BaseTransport):
    """httpx transport that asks the breaker before every attempt and reports its outcome."""

    def __init__(self, inner: httpx2.BaseTransport, breaker: CircuitBreaker) -> None:
        self._inner = inner
        self._breaker = breaker

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            probe = self._breaker.before_call()
        except BreakerOpen as exc:
            raise BreakerRefused(str(exc)) from None
        try:
            response = self._inner.handle_request(request)
        except Exception:
            self._breaker.failure(was_probe=probe)
            raise
        if response.status_code >= 500 or response.status_code == 429:
            self._breaker.failure(was_probe=probe)
        else:
            self._breaker.success()
        return response

    def close(self) -> None:
        self._inner.close()


def parse_note(content: Optional[str]) -> Optional[dict[str, Any]]:
    """The visit note out of the model's answer: bare JSON, JSON in a code fence, or JSON
    inside prose. None when there is no object with a string `summary`."""
    if not content:
        return None
    text = content.strip()
    candidates = [text]
    fence = re.search(r"```(?:json|JSON)?\s*(.*?)```", text, re.S)
    if fence:
        candidates.append(fence.group(1).strip())
    first, last = text.find("{"), text.rfind("}")
    if 0 <= first < last:
        candidates.append(text[first : last + 1])
    for c in candidates:
        try:
            data = json.loads(c)
        except ValueError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("summary"), str) or not data["summary"].strip():
            continue
        questions = data.get("questions", [])
        if not isinstance(questions, list):
            continue
        return {"summary": data["summary"].strip(), "questions": [str(q) for q in questions if isinstance(q, (str, int, float))]}
    return None


class LlmClient:
    def __init__(self, settings: Settings, variant: Variant) -> None:
        self.settings = settings
        self.variant = variant
        self.model = settings.llm_model
        self.breaker = CircuitBreaker("llm", threshold=5, open_for=1.0, enabled=variant.breakers)
        transport = GuardedTransport(httpx2.HTTPTransport(retries=0), self.breaker)
        # With ignore-retry-after the team switched the SDK's retries off for a loop of their
        # own that never looks at Retry-After (see _call).
        self._sdk_retries = 1 if variant.honour_retry_after else 0
        kwargs: dict[str, Any] = {}
        if variant.timeouts:
            kwargs["timeout"] = httpx2.Timeout(settings.llm_read_timeout, connect=settings.llm_connect_timeout)
        self.client = openai.OpenAI(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            max_retries=self._sdk_retries,
            http_client=openai.DefaultHttpxClient(transport=transport),
            **kwargs,
        )
        self._own_policy = RetryPolicy(max_attempts=2, base=0.2, cap=2.0, honour_retry_after=False)

    def _options(self, budget: float):
        if not self.variant.timeouts:
            return self.client
        attempts = self._sdk_retries + 1
        per_attempt = min(self.settings.llm_read_timeout, max(0.2, (budget - 0.6) / attempts))
        return self.client.with_options(
            timeout=httpx2.Timeout(per_attempt, connect=min(self.settings.llm_connect_timeout, per_attempt))
        )

    def _call(self, budget: float, **params: Any) -> Any:
        if budget <= 0.3:
            raise LlmUnavailable("no time left for the LLM")
        if self._sdk_retries:
            return self._options(budget).chat.completions.create(model=self.model, **params)
        # ignore-retry-after: our own loop, fixed backoff, Retry-After not read.
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._options(budget).chat.completions.create(model=self.model, **params)
            except (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError) as exc:
                if isinstance(exc, BreakerRefused) or attempt >= self._own_policy.max_attempts:
                    raise
                sleep_within_budget(self._own_policy.delay(attempt))

    def visit_note(self, *, patient: dict[str, Any], practitioner: str, start: str, budget: float) -> Optional[dict[str, Any]]:
        """A short visit-preparation note, or None when the model cannot give a usable one."""
        prompt = (
            "Prepare a short visit-preparation note for a clinic appointment.\n"
            f"Patient: {patient.get('first_name', '')} {patient.get('last_name', '')}, born {patient.get('birthdate', '?')}, "
            f"preferred language {patient.get('language', 'English')}.\n"
            f"Practitioner: {practitioner}. Appointment start: {start}.\n"
            'Answer with JSON: {"summary": string, "questions": [string]}.'
        )
        try:
            completion = self._call(
                budget,
                messages=[
                    {"role": "system", "content": "You are a careful clinical scheduling assistant. Answer only with JSON."},
                    {"role": "user", "content": prompt},
                ],
                response_format={"type": "json_schema", "json_schema": {"name": "visit_prep", "strict": True, "schema": NOTE_SCHEMA}},
                max_tokens=300,
                temperature=0.2,
            )
        except (openai.OpenAIError, DeadlineExceeded, httpx2.HTTPError, LlmUnavailable) as exc:
            log.warning("visit note unavailable: %s: %s", type(exc).__name__, exc)
            return None
        content = completion.choices[0].message.content if completion.choices else None
        note = parse_note(content)
        if note is None:
            log.warning("visit note unusable (model answered %r)", (content or "")[:120])
        return note

    def summarize(self, *, subject: str, notes: str, budget_fn) -> str:
        """Summarise case notes, streamed. A stream cut after it started (an error while
        reading it, or no finish_reason) earns one more try of ours; failures before the
        stream starts were already retried by openai-python. Raises LlmUnavailable when no
        complete summary came."""
        last: Exception = LlmUnavailable("no attempt")
        for attempt in (1, 2):
            budget = budget_fn()
            if budget <= 0.5:
                break
            try:
                stream = self._call(
                    budget,
                    messages=[
                        {"role": "system", "content": "Summarise clinical case notes for a busy clinician in three sentences or fewer."},
                        {"role": "user", "content": f"Subject: {subject}\n\nNotes:\n{notes}"},
                    ],
                    stream=True,
                    max_tokens=250,
                    temperature=0.2,
                )
            except (openai.OpenAIError, httpx2.HTTPError, LlmUnavailable, DeadlineExceeded) as exc:
                raise LlmUnavailable(f"no summary: {type(exc).__name__}: {exc}") from None
            parts: list[str] = []
            finished = None
            try:
                with stream:
                    for chunk in stream:
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        if choice.delta and choice.delta.content:
                            parts.append(choice.delta.content)
                        if choice.finish_reason:
                            finished = choice.finish_reason
            except (openai.OpenAIError, httpx2.HTTPError, ValueError) as exc:
                last = exc
                log.warning("summary stream %d cut after %d chunks: %s: %s", attempt, len(parts), type(exc).__name__, exc)
                continue
            text = "".join(parts).strip()
            if finished is None or not text:
                last = LlmUnavailable(f"stream ended without finish_reason after {len(parts)} chunks")
                log.warning("summary stream %d incomplete: %s", attempt, last)
                continue
            return text
        raise LlmUnavailable(f"no summary: {type(last).__name__}: {last}")
