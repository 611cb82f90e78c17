"""Conversations, their turns and feedback on answers -> one SQLite file in the data folder.

    data/conversations.sqlite
      conversations  id, key (e.g. a Slack thread "slack:T1:C1:1700000000.000100"), created_at
      turns          conversation_id, n (0, 1, ...), role, content, citations, abstained,
                     answer_id (assistant turns only), created_at
      feedback       answer_id, rating ("up" / "down"), comment, source, and a snapshot of the
                     question, the answer, its citations and the history before the question
      seen_events    ids of incoming events already taken on (Slack event ids), so that a
                     redelivered event is not answered twice, even after a restart

The web service, the Slack bot and the CLI may write at the same time from several threads
and processes: the journal is WAL (readers never wait for writers), every connection has a
busy timeout, and each write is one short `BEGIN IMMEDIATE` transaction, so that writers
queue for the lock instead of failing halfway.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from assistant.errors import NotFoundError
from assistant.ingest.documents import detect_language
from assistant.question import profile
from assistant.records import Answer, Citation, Turn

DB_FILE = "conversations.sqlite"
BUSY_TIMEOUT_S = 30.0

Rating = Literal["up", "down"]

_ENGLISH_WORDS = frozenset(
    {
        "the",
        "a",
        "an",
        "of",
        "and",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "is",
        "are",
        "was",
        "were",
        "does",
        "do",
        "did",
        "has",
        "have",
    }
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY,
    key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    n INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    citations TEXT NOT NULL DEFAULT '[]',
    abstained INTEGER NOT NULL DEFAULT 0,
    answer_id TEXT UNIQUE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (conversation_id, n));
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    answer_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    turn INTEGER NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '',
    user TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    abstained INTEGER NOT NULL,
    citations TEXT NOT NULL,
    history TEXT NOT NULL,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS feedback_answer ON feedback (answer_id);
CREATE TABLE IF NOT EXISTS seen_events (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS seen_events_created ON seen_events (created_at);
"""

# How long an event id is remembered: Slack retries an event for about an hour at most.
SEEN_EVENTS_KEPT_S = 7 * 24 * 3600


@dataclass(frozen=True)
class StoredTurn:
    """One message of a stored conversation (citations and answer id on answers only)."""

    n: int
    role: Literal["user", "assistant"]
    content: str
    citations: tuple[Citation, ...]
    abstained: bool
    answer_id: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        """Returns the JSON shape of a turn."""
        return {
            "index": self.n,
            "role": self.role,
            "content": self.content,
            "citations": [c.to_dict() for c in self.citations],
            "abstained": self.abstained,
            "answer_id": self.answer_id,
            "created_at": self.created_at,
        }


@dataclass(frozen=True)
class Conversation:
    """A stored conversation with its turns in order."""

    id: str
    key: str | None
    created_at: str
    turns: tuple[StoredTurn, ...]

    def history(self) -> list[Turn]:
        """Returns the turns as the history `Assistant.ask` takes."""
        return [Turn(t.role, t.content) for t in self.turns]


@dataclass(frozen=True)
class SavedAnswer:
    """Where an answer was stored: feedback refers to it by `answer_id`."""

    conversation_id: str
    answer_id: str
    turn: int  # index of the assistant turn in the conversation


@dataclass(frozen=True)
class Exchange:
    """A stored answer with the question it answered."""

    conversation_id: str
    question: str
    answer: StoredTurn


@dataclass(frozen=True)
class Feedback:
    """A thumbs up or down on one answer, with what was asked and answered at the time."""

    id: int
    answer_id: str
    conversation_id: str
    turn: int
    rating: Rating
    comment: str
    source: str
    user: str
    question: str
    answer: str
    abstained: bool
    citations: tuple[Citation, ...]
    history: tuple[Turn, ...]
    created_at: str


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _citations_json(citations: Sequence[Citation]) -> str:
    return json.dumps([c.to_dict() for c in citations], ensure_ascii=False)


def _citations_from(text: str) -> tuple[Citation, ...]:
    return tuple(Citation(**c) for c in json.loads(text))


def _turn_from_row(row: sqlite3.Row) -> StoredTurn:
    return StoredTurn(
        n=row["n"],
        role=row["role"],
        content=row["content"],
        citations=_citations_from(row["citations"]),
        abstained=bool(row["abstained"]),
        answer_id=row["answer_id"],
        created_at=row["created_at"],
    )


_INSERT_CONVERSATION = "INSERT INTO conversations (id, key, created_at, updated_at) VALUES (?, ?, ?, ?)"


def _exists(db: sqlite3.Connection, conversation_id: str) -> bool:
    found = db.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,))
    return found.fetchone() is not None


class ConversationStore:
    """Stores conversations, their turns and feedback in `data_dir/conversations.sqlite`."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            # WAL is a property of the file: set once, every later connection uses it.
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: cheap next to answering, and safe in any thread.
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        db.row_factory = sqlite3.Row
        # With WAL, NORMAL syncs at checkpoints instead of every commit: still crash-safe,
        # and a power cut can lose only the last moments of chat history.
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield db
        finally:
            db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front: a deferred transaction that reads first
        # can fail with "database is locked" when it upgrades, whatever the busy timeout.
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # -- conversations ------------------------------------------------------------------

    def create(self, key: str | None = None) -> str:
        """Starts a new conversation and returns its id."""
        conversation_id = uuid.uuid4().hex
        now = _now()
        with self._write() as db:
            db.execute(
                _INSERT_CONVERSATION,
                (conversation_id, key, now, now),
            )
        return conversation_id

    def get_or_create(self, key: str) -> str:
        """Returns the id of the conversation with this key, starting it on first use."""
        with self._write() as db:
            found = db.execute("SELECT id FROM conversations WHERE key = ?", (key,)).fetchone()
            if found is not None:
                return str(found["id"])
            conversation_id = uuid.uuid4().hex
            now = _now()
            db.execute(
                _INSERT_CONVERSATION,
                (conversation_id, key, now, now),
            )
            return conversation_id

    def exists(self, conversation_id: str) -> bool:
        """Tells whether a conversation with this id exists."""
        with self._connect() as db:
            return _exists(db, conversation_id)

    def conversation(self, conversation_id: str) -> Conversation:
        """Returns a conversation with all its turns, or raises NotFoundError."""
        with self._connect() as db:
            db.execute("BEGIN")  # one snapshot: turns added meanwhile are not half-read
            head = db.execute(
                "SELECT id, key, created_at FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            if head is None:
                db.execute("COMMIT")
                raise NotFoundError(f"no conversation {conversation_id!r}: send conversation_id null to start one")
            rows = db.execute("SELECT * FROM turns WHERE conversation_id = ? ORDER BY n", (conversation_id,)).fetchall()
            db.execute("COMMIT")
        return Conversation(
            id=head["id"],
            key=head["key"],
            created_at=head["created_at"],
            turns=tuple(_turn_from_row(r) for r in rows),
        )

    def history(self, conversation_id: str) -> list[Turn]:
        """Returns a conversation's turns as `Assistant.ask` history, or raises NotFoundError."""
        return self.conversation(conversation_id).history()

    def add_exchange(self, conversation_id: str | None, question: str, answer: Answer) -> SavedAnswer:
        """Appends a question and its answer to a conversation (a new one for None).

        Returns where the answer was stored, with the `answer_id` feedback refers to.
        """
        answer_id = uuid.uuid4().hex
        now = _now()
        with self._write() as db:
            if conversation_id is None:
                conversation_id = uuid.uuid4().hex
                db.execute(
                    _INSERT_CONVERSATION,
                    (conversation_id, None, now, now),
                )
            elif not _exists(db, conversation_id):
                raise NotFoundError(f"no conversation {conversation_id!r}")
            (last,) = db.execute("SELECT MAX(n) FROM turns WHERE conversation_id = ?", (conversation_id,)).fetchone()
            n = 0 if last is None else last + 1
            db.execute(
                "INSERT INTO turns (conversation_id, n, role, content, created_at) VALUES (?, ?, 'user', ?, ?)",
                (conversation_id, n, question, now),
            )
            db.execute(
                "INSERT INTO turns (conversation_id, n, role, content, citations, abstained, "
                "answer_id, created_at) VALUES (?, ?, 'assistant', ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    n + 1,
                    answer.text,
                    _citations_json(answer.citations),
                    int(answer.abstained),
                    answer_id,
                    now,
                ),
            )
            db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return SavedAnswer(conversation_id, answer_id, n + 1)

    def exchange(self, answer_id: str) -> Exchange:
        """Returns the stored answer with this id and its question, or raises NotFoundError."""
        with self._connect() as db:
            db.execute("BEGIN")
            row = db.execute("SELECT * FROM turns WHERE answer_id = ?", (answer_id,)).fetchone()
            question = None
            if row is not None:
                question = db.execute(
                    "SELECT content FROM turns WHERE conversation_id = ? AND n = ?",
                    (row["conversation_id"], row["n"] - 1),
                ).fetchone()
            db.execute("COMMIT")
        if row is None:
            raise NotFoundError(f"no answer {answer_id!r}")
        return Exchange(
            conversation_id=row["conversation_id"],
            question=question["content"] if question is not None else "",
            answer=_turn_from_row(row),
        )

    # -- incoming events ----------------------------------------------------------------

    def claim_event(self, event_id: str) -> bool:
        """Records an incoming event id: True the first time, False when it was seen before.

        Claiming is atomic, so that of two deliveries racing in parallel exactly one wins. Ids
        older than SEEN_EVENTS_KEPT_S are forgotten.
        """
        now = datetime.now(UTC)
        cutoff = datetime.fromtimestamp(now.timestamp() - SEEN_EVENTS_KEPT_S, UTC)
        with self._write() as db:
            db.execute(
                "DELETE FROM seen_events WHERE created_at < ?",
                (cutoff.isoformat(timespec="milliseconds"),),
            )
            cursor = db.execute(
                "INSERT OR IGNORE INTO seen_events (id, created_at) VALUES (?, ?)",
                (event_id, now.isoformat(timespec="milliseconds")),
            )
            return cursor.rowcount == 1

    # -- feedback -----------------------------------------------------------------------

    def add_feedback(
        self,
        answer_id: str,
        rating: Rating,
        comment: str = "",
        *,
        source: str = "",
        user: str = "",
    ) -> Feedback:
        """Stores a thumbs up or down on an answer with a snapshot of the exchange."""
        if rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', not {rating!r}")
        now = _now()
        with self._write() as db:
            answer = db.execute("SELECT * FROM turns WHERE answer_id = ?", (answer_id,)).fetchone()
            if answer is None:
                raise NotFoundError(f"no answer {answer_id!r}: use the answer_id /api/chat returned")
            earlier = db.execute(
                "SELECT role, content FROM turns WHERE conversation_id = ? AND n < ? ORDER BY n",
                (answer["conversation_id"], answer["n"]),
            ).fetchall()
            # The turn before an answer is its question; the ones before that its history.
            question = earlier[-1]["content"] if earlier else ""
            history = [{"role": r["role"], "content": r["content"]} for r in earlier[:-1]]
            cursor = db.execute(
                "INSERT INTO feedback (answer_id, conversation_id, turn, rating, comment, source, "
                "user, question, answer, abstained, citations, history, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    answer_id,
                    answer["conversation_id"],
                    answer["n"],
                    rating,
                    comment,
                    source,
                    user,
                    question,
                    answer["content"],
                    answer["abstained"],
                    answer["citations"],
                    json.dumps(history, ensure_ascii=False),
                    now,
                ),
            )
            feedback_id = cursor.lastrowid
        return Feedback(
            id=int(feedback_id or 0),
            answer_id=answer_id,
            conversation_id=answer["conversation_id"],
            turn=answer["n"],
            rating=rating,
            comment=comment,
            source=source,
            user=user,
            question=question,
            answer=answer["content"],
            abstained=bool(answer["abstained"]),
            citations=_citations_from(answer["citations"]),
            history=tuple(Turn(h["role"], h["content"]) for h in history),
            created_at=now,
        )

    def feedback(self, rating: Rating | None = None) -> list[Feedback]:
        """Lists the feedback received, oldest first, optionally only one rating."""
        query = "SELECT * FROM feedback"
        params: tuple[str, ...] = ()
        if rating is not None:
            query += " WHERE rating = ?"
            params = (rating,)
        with self._connect() as db:
            rows = db.execute(query + " ORDER BY id", params).fetchall()
        return [
            Feedback(
                id=r["id"],
                answer_id=r["answer_id"],
                conversation_id=r["conversation_id"],
                turn=r["turn"],
                rating=r["rating"],
                comment=r["comment"],
                source=r["source"],
                user=r["user"],
                question=r["question"],
                answer=r["answer"],
                abstained=bool(r["abstained"]),
                citations=_citations_from(r["citations"]),
                history=tuple(Turn(h["role"], h["content"]) for h in json.loads(r["history"])),
                created_at=r["created_at"],
            )
            for r in rows
        ]

    def export_feedback(self, path: Path) -> int:
        """Writes thumbs-down answers as candidate gold questions (JSON Lines); returns how many.

        Each line has the gold format of EVAL.md with `key_facts` and `sources` left empty for
        a person to fill in, `answer` holding what was answered, plus the user's `comment` and
        the `citations` given. An answer rated several times counts by its latest rating.
        """
        latest: dict[str, Feedback] = {}
        for item in self.feedback():
            latest[item.answer_id] = item  # oldest first, so the last one wins
        down = [f for f in latest.values() if f.rating == "down"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d")
        with path.open("w", encoding="utf-8") as out:
            for item in down:
                line = {
                    "id": f"feedback-{stamp}-{item.id}",
                    "kind": guess_kind(item.question, item.history),
                    "question": item.question,
                    "history": [{"role": t.role, "content": t.content} for t in item.history],
                    "answer": item.answer,
                    "key_facts": [],
                    "sources": [],
                    "comment": item.comment,
                    "citations": [c.to_dict() for c in item.citations],
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
        return len(down)


def guess_kind(question: str, history: Sequence[Turn]) -> str:
    """Guesses the gold `kind` of a question (a person checks it when filling in key facts)."""
    if history:
        return "followup"
    words = set(re.findall(r"[^\W\d_]+", question.lower()))
    # Language detection is unsure on a dozen words: English question words overrule it.
    if detect_language(question) not in {"en", "und"} and not words & _ENGLISH_WORDS:
        return "multilingual"
    shape = profile(question)
    if shape.wants_list:
        return "list"
    if shape.wants_number or shape.wants_date:
        return "number"
    return "fact"
