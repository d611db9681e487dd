"""Settings, all from the environment (crashcart's SUT contract, plus two of our own)."""

from __future__ import annotations

import os
from dataclasses import dataclass

# The builds this worker can run as. `correct` is the one we ship; `resummarise-all` is the
# mistake kept for crashcart to catch (see CasePoller._cases_to_look_at, the only place that
# reads it).
VARIANTS = ("correct", "resummarise-all")


def _need(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(f"case-poller: missing required environment variable {name}")
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
    poll_interval: float
    variant: str

    # Salesforce: per attempt. A poll that cannot reach the org gives up quickly and the
    # next poll tries again, so there is no point waiting long on one call.
    sf_connect_timeout: float = 0.5
    sf_read_timeout: float = 2.0
    sf_max_attempts: int = 4
    # The LLM: a two-sentence answer at ~45 tokens/s, plus a cold start, fits in 10 s.
    llm_connect_timeout: float = 1.0
    llm_read_timeout: float = 10.0
    llm_max_retries: int = 2

    @classmethod
    def from_env(cls) -> "Settings":
        variant = os.environ.get("CASE_POLLER_VARIANT", "correct").strip() or "correct"
        if variant not in VARIANTS:
            raise SystemExit(f"case-poller: unknown CASE_POLLER_VARIANT {variant!r}; known: {', '.join(VARIANTS)}")
        interval_ms = os.environ.get("POLL_INTERVAL_MS", "500").strip() or "500"
        try:
            poll_interval = max(0.05, int(interval_ms) / 1000.0)
        except ValueError:
            raise SystemExit(f"case-poller: POLL_INTERVAL_MS must be a whole number of milliseconds, not {interval_ms!r}") from None
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
            poll_interval=poll_interval,
            variant=variant,
        )
