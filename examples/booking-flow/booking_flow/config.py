"""Settings, all from the environment (crashcart's SUT contract)."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _need(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise SystemExit(f"booking-flow: missing required environment variable {name}")
    return value


def _seed(value: str) -> int:
    """CRASHCART_SEED seeds our retry jitter, so a run can be replayed. Any text will do."""
    value = value.strip()
    try:
        return int(value or 0)
    except ValueError:
        return int.from_bytes(value.encode()[:8].ljust(8, b"\0"), "big")


BACKOFFS = ("none", "constant", "exponential", "full-jitter", "equal-jitter")


def _backoff_name(value: str) -> str:
    name = value.strip() or "full-jitter"
    if name not in BACKOFFS:
        raise SystemExit(f"RETRY_BACKOFF must be one of {', '.join(BACKOFFS)}, got {name!r}")
    return name


def _millis(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {text!r}")
    if value < 0 or (name == "RETRY_MAX_ATTEMPTS" and value < 1):
        raise SystemExit(f"{name} out of range: {value}")
    return value


@dataclass(frozen=True)
class Settings:
    port: int
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

    # Every request to our API must be answered within this long: the caller (the front
    # desk app) gives up after 10 s. Each wait and timeout below is cut to what is left.
    request_budget: float = 7.0
    # Salesforce, per attempt.
    sf_connect_timeout: float = 0.5
    sf_read_timeout: float = 2.0
    sf_max_attempts: int = 4
    # Backoff between Salesforce attempts: RETRY_BACKOFF (none | constant | exponential |
    # full-jitter | equal-jitter), RETRY_BASE_MS, RETRY_CAP_MS, RETRY_MAX_ATTEMPTS.
    sf_backoff: str = "full-jitter"
    sf_backoff_base: float = 0.2
    sf_backoff_cap: float = 2.0
    # The visit preparation is best effort: one retry (openai-python's own), 4 s per
    # attempt at most, and never more than the request budget leaves minus what the
    # Event write needs.
    llm_connect_timeout: float = 1.0
    llm_read_timeout: float = 4.0
    llm_max_retries: int = 1
    llm_reserve: float = 2.0  # seconds of the budget kept back for the writes after the LLM

    @classmethod
    def from_env(cls) -> "Settings":
        port_text = _need("PORT")
        try:
            port = int(port_text)
        except ValueError:
            raise SystemExit(f"booking-flow: PORT must be a port number, not {port_text!r}") from None
        return cls(
            port=port,
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
            sf_backoff=_backoff_name(os.environ.get("RETRY_BACKOFF", "full-jitter")),
            sf_backoff_base=_millis("RETRY_BASE_MS", 200) / 1000.0,
            sf_backoff_cap=_millis("RETRY_CAP_MS", 2000) / 1000.0,
            sf_max_attempts=int(_millis("RETRY_MAX_ATTEMPTS", 4)),
        )
