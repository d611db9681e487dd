"""Settings, all from the environment (the crashcart SUT contract)."""

from __future__ import annotations

import os
from dataclasses import dataclass


def _need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"missing required environment variable {name}")
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

    # Time budgets, seconds. The workload gives an operation about 10 s; we answer well
    # before that, whatever the dependencies do.
    request_budget: float = 7.5
    sf_connect_timeout: float = 0.5
    sf_read_timeout: float = 1.2
    llm_connect_timeout: float = 1.0
    llm_read_timeout: float = 3.0

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(
            port=int(os.environ.get("PORT", "8080")),
            sf_login_url=_need("SALESFORCE_LOGIN_URL").rstrip("/"),
            sf_instance_url=_need("SALESFORCE_INSTANCE_URL").rstrip("/"),
            sf_client_id=_need("SALESFORCE_CLIENT_ID"),
            sf_client_secret=_need("SALESFORCE_CLIENT_SECRET"),
            sf_username=_need("SALESFORCE_USERNAME"),
            sf_password=_need("SALESFORCE_PASSWORD"),
            sf_api_version=os.environ.get("SALESFORCE_API_VERSION", "59.0").lstrip("v"),
            openai_base_url=_need("OPENAI_BASE_URL"),
            openai_api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            llm_model=os.environ.get("LLM_MODEL", "llama3.1:8b"),
            seed=int(os.environ.get("CRASHCART_SEED", "0") or 0),
        )
