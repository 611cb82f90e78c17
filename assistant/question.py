"""Question -> QuestionProfile: its search terms and the kind of answer it asks for.

Shared by retrieval (which terms matter) and answering (what shape of answer fits)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from assistant.keyword_index import analyze

# Words that shape a question but say nothing about its subject.
_QUESTION_WORDS = frozenset(
    """which what who whom whose when where why how many much name list tell give show me
    please kind type sort does do did is are was were can could would kinds types one ones
    anything something""".split()
)
_NUMBER_CUES = re.compile(
    r"\b(how (many|much|large|big|long|old)|percentage|per ?cent|share of|number of|"
    r"what (is|was) the (population|gdp|size|budget|turnover|revenue|area|total)|"
    r"how many|amount)\b",
    re.IGNORECASE,
)
_DATE_CUES = re.compile(
    r"\b(when|what (year|date|month)|which (year|date|month)|since when|in what year)\b",
    re.IGNORECASE,
)
_LIST_OPENERS = re.compile(
    r"^\s*(and\s+|so\s+|also\s+)?(list|name (all|the)|enumerate|what are the|which are the|"
    r"who are the|what were the|which were the)\b",
    re.IGNORECASE,
)
_WH = {"which", "what", "who"}
_NOT_PLURAL = {"is", "was", "has", "does", "this", "its", "us", "plus", "status", "process",
               "business", "address", "access", "success", "campus", "focus", "class", "less",
               "analysis", "basis", "thesis", "news", "series", "species", "gas", "bus"}


@dataclass(frozen=True)
class QuestionProfile:
    """What a question asks: its content terms and the shape of a good answer."""

    text: str
    terms: tuple[str, ...]  # stemmed content terms, in question order, without repeats
    wants_list: bool
    wants_number: bool
    wants_date: bool


def profile(question: str) -> QuestionProfile:
    """Analyses a question."""
    seen: dict[str, None] = {}
    for term in analyze(question):
        if term not in _QUESTION_STEMS and term not in seen:
            seen[term] = None
    return QuestionProfile(
        text=question,
        terms=tuple(seen),
        wants_list=_wants_list(question),
        wants_number=bool(_NUMBER_CUES.search(question)),
        wants_date=bool(_DATE_CUES.search(question)),
    )


_QUESTION_STEMS = frozenset(analyze(" ".join(_QUESTION_WORDS)))


def _wants_list(question: str) -> bool:
    if _LIST_OPENERS.search(question):
        return True
    tokens = re.findall(r"[^\W_]+", question)
    while tokens and tokens[0].lower() in {"and", "so", "also", "then", "but"}:
        tokens = tokens[1:]
    if not tokens or tokens[0].lower() not in _WH:
        return False
    # "Which partners hold ...", "What other regions are ...", "Which of the clusters ...":
    # a plural common noun before the verb.
    for token in tokens[1:5]:
        lower = token.lower()
        if lower in _AUXILIARIES or lower in {"one", "single"}:
            return False
        if token[:1].isupper():  # a name: "What Plastipolis ..."
            continue
        if len(lower) > 3 and lower.endswith("s") and not lower.endswith("ss") and lower not in _NOT_PLURAL:
            return True
    return False


_AUXILIARIES = {"does", "do", "did", "is", "are", "was", "were", "has", "have", "had", "can",
                "could", "will", "would", "should", "may", "might"}
