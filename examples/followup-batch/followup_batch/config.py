"""Settings, all from the environment (crashcart's SUT contract, plus a few of our own)."""

from __future__ import annotations

import os
from dataclasses import dataclass

# The builds this batch can run as. `correct` is the one we ship; `non-idempotent` is the
# mistake kept for crashcart to catch (see batch.case_job, the only place that reads it).
VARIANTS = ("correct", "non-idempotent")


class ConfigError(Exception):
    """A setting is missing or unusable: the batch cannot start."""


def _need(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"missing required environment variable {name}")
    return value


def _number(name: str, default: float, minimum: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {text!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {text!r}")
    return value


def _seed(value: str) -> int:
    """CRASHCART_SEED seeds our jitter, so a run can be replayed. Any text will do."""
    value = value.strip()
    try:
        return int(value or 0)
    except ValueError:
        return int.from_bytes(value.encode()[:8].ljust(8, b"\0"), "big")


@dataclass(frozen=True)
class Settings:
    sf_login_url: str
    sf_instance_url: str
    sf_client_id: str
    sf_client_secret: str
    sf_username: str
    sf_password: str
    sf_api_version: str
    openai_base_url: str
    openai_api_key: str
    llm_model: str
    seed: int
    variant: str
    # How long we wait for Salesforce to finish one Bulk API job, in seconds. A nightly job
    # of a few thousand rows takes a minute or two on a busy org.
    bulk_job_timeout: float
    # Appointments asked about at once (the GPU server has 4 slots; leave the clinicians' own
    # tools some room).
    llm_concurrency: int

    # Salesforce, per attempt. A batch can afford to wait longer than an interactive call,
    # but not forever: the upload of a big CSV is the slowest call we make.
    sf_connect_timeout: float = 3.0
    sf_read_timeout: float = 30.0
    sf_max_attempts: int = 4
    # Bulk API job: attempts at create + upload + close (a job we could not fill is
    # abandoned, and a fresh one takes its place).
    bulk_job_attempts: int = 3
    # Polling a job's state: first wait, doubling up to the cap.
    bulk_poll_first: float = 0.1
    bulk_poll_cap: float = 5.0
    # The LLM: a short answer at ~45 tokens/s, plus a cold start, fits in 20 s.
    llm_connect_timeout: float = 2.0
    llm_read_timeout: float = 20.0
    llm_max_retries: int = 2

    @classmethod
    def from_env(cls) -> "Settings":
        variant = os.environ.get("FOLLOWUP_BATCH_VARIANT", "correct").strip() or "correct"
        if variant not in VARIANTS:
            raise ConfigError(f"unknown FOLLOWUP_BATCH_VARIANT {variant!r}; known: {', '.join(VARIANTS)}")
        return cls(
            sf_login_url=_need("SALESFORCE_LOGIN_URL").rstrip("/"),
            sf_instance_url=_need("SALESFORCE_INSTANCE_URL").rstrip("/"),
            sf_client_id=_need("SALESFORCE_CLIENT_ID"),
            sf_client_secret=_need("SALESFORCE_CLIENT_SECRET"),
            sf_username=_need("SALESFORCE_USERNAME"),
            sf_password=_need("SALESFORCE_PASSWORD"),
            sf_api_version=(os.environ.get("SALESFORCE_API_VERSION", "").strip() or "59.0").lstrip("vV"),
            openai_base_url=_need("OPENAI_BASE_URL").rstrip("/"),
            openai_api_key=os.environ.get("OPENAI_API_KEY", "").strip() or "not-needed",
            llm_model=_need("LLM_MODEL"),
            seed=_seed(os.environ.get("CRASHCART_SEED", "")),
            variant=variant,
            bulk_job_timeout=_number("BULK_JOB_TIMEOUT_S", 900.0, 1.0),
            llm_concurrency=int(_number("LLM_CONCURRENCY", 4, 1)),
        )
