"""Errors the assistant raises on purpose, each with what to do about it.

    AssistantError
    ├── ConfigError            a setting is wrong or a required part is not installed
    ├── CorpusError            a corpus file or folder cannot be used (carries `path`)
    ├── IndexNotFoundError     no index yet: run `assistant index`
    │   └── IndexBuildingError no index yet, but one is being built: wait for it
    ├── IndexMismatchError     the index was built differently (model, format): rebuild it
    ├── IndexCorruptError      an index file is unreadable: rebuild it
    ├── IndexWriteError        the new index could not be written; the previous one is kept
    ├── QuestionError          the question is empty or too long
    ├── NotFoundError          an id (document, conversation) that does not exist
    └── GenerationError        the LLM server failed (the extractive answer is served instead)

"Not in the documents" is an answer, not an error.
"""

from __future__ import annotations

import os
from pathlib import Path

REBUILD_HINT = "run `assistant index --rebuild`"


class AssistantError(Exception):
    """Root of the errors the assistant raises on purpose."""


class ConfigError(AssistantError):
    """A setting is wrong, or a part it needs is not installed."""


class CorpusError(AssistantError):
    """A corpus file or folder cannot be used."""

    def __init__(self, message: str, path: Path | str | None = None) -> None:
        super().__init__(message)
        self.path = path


class IndexNotFoundError(AssistantError):
    """There is no index where one was expected."""

    def __init__(self, index_dir: Path) -> None:
        # The absolute path: "no index in index" does not say where it looked from.
        super().__init__(
            f"no index in {os.path.abspath(index_dir)}: run `assistant index` first, or set "
            "ASSISTANT_INDEX_DIR (or --index) to the folder of an existing index"
        )
        self.index_dir = index_dir


class IndexBuildingError(IndexNotFoundError):
    """No index can answer yet, but one is being built; `progress` says how far it has got."""

    def __init__(self, index_dir: Path, progress: str) -> None:
        AssistantError.__init__(self, f"{progress}; questions are answered once it is done")
        self.index_dir = index_dir
        self.progress = progress


class IndexMismatchError(AssistantError):
    """The index on disk was built with other settings than the ones in use."""


class IndexCorruptError(AssistantError):
    """An index file is missing, truncated or unreadable."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"the index file {path} is unreadable ({reason}): {REBUILD_HINT}")
        self.path = path


class IndexWriteError(AssistantError):
    """Writing a new index failed; the previous index is still the one in use."""


class QuestionError(AssistantError):
    """The question cannot be answered as asked (empty, too long)."""


class NotFoundError(AssistantError):
    """A document, conversation or other record with that id does not exist."""


class GenerationError(AssistantError):
    """The language-model server did not produce a usable answer."""
