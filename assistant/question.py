"""Question -> QuestionProfile: its terms, the names it mentions, the kind of answer it expects.

Shared by retrieval (which terms matter) and answering (what a fitting answer looks like):
"How many ..." wants a number, "When ..." a date, "Who ..." or "In which town ..." a name
that the question itself does not already contain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from assistant.text import MONTHS, NAME_TOKEN, STOPWORDS, analyze, fold

AnswerType = Literal["number", "money", "date", "name", "reason"]

# The verbs a question opens with or turns on: "Does ...", "Who is ...", "What could ...".
_QUESTION_VERBS = frozenset(["does", "do", "did", "is", "are", "was", "were", "can", "could", "would"])
# Words that shape a question but say nothing about its subject.
_QUESTION_WORDS = _QUESTION_VERBS | frozenset(
    [
        "which",
        "what",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "many",
        "much",
        "name",
        "list",
        "tell",
        "give",
        "show",
        "me",
        "please",
        "kind",
        "type",
        "sort",
        "kinds",
        "types",
        "one",
        "ones",
        "anything",
        "something",
        "roughly",
        "approximately",
        "exactly",
    ]
)
_NUMBER_CUES = re.compile(
    r"\b(how (many|much|large|big|long|old)|what (?:(?:is|was|are|were) )?(?:the )?(?:\w+ )?(percentage|percent|"
    r"proportion|share|number|amount|size|population|gdp|budget|turnover|revenue|area|total)|percentage of|"
    r"number of|share of)\b",
    re.IGNORECASE,
)
# "How much did it cost ...", "What is the annual fee ...": an amount of money, not any number.
_MONEY_CUES = re.compile(
    r"\bhow much\b.*\b(cost|costs|pay|paid|bid|spend|spent|invest(ed)?|charge[sd]?|raised?|earn(ed)?|worth|"
    r"sell|sold|buy|bought|fund(ed)?)\b|\b(what|which) (is|was|are|were) ([\w'’-]+ ){0,4}"
    r"(cost|costs|price|prices|fee|fees|budget|funding|turnover|revenue|salary|investment)\b",
    re.IGNORECASE,
)
_DATE_CUES = re.compile(
    r"^\s*(and\s+)?when\b|\b(what (year|date|month|day)|which (year|date|month|day)|since when|"
    r"in what year|how long ago)\b",
    re.IGNORECASE,
)
_NAME_NOUNS = (
    r"organi[sz]ations?|compan(y|ies)|clusters?|partners?|institutions?|universit(y|ies)|"
    r"associations?|projects?|programmes?|programs?|initiatives?|events?|regions?|countr(y|ies)|"
    r"cit(y|ies)|towns?|places?|cent(re|er)s?|agenc(y|ies)|bod(y|ies)|networks?|persons?|people|"
    r"firms?|ministr(y|ies)|governments?|groups?|platforms?|hubs?|funds?|label"
)
_NAME_CUES = re.compile(
    rf"^\s*(and\s+)?(who|whom|whose|where)\b|\b(which|what)\s+(\w+\s+)?({_NAME_NOUNS})\b|"
    rf"\bin which\b|\bfrom which\b|\bby whom\b|\bnamed?\b|\bcalled\b",
    re.IGNORECASE,
)
_REASON_CUES = re.compile(r"^\s*(and\s+)?why\b|\bfor what reason\b|\bhow come\b", re.IGNORECASE)
_LIST_OPENERS = re.compile(
    r"^\s*(and\s+|so\s+|also\s+)?(list|name (all|the)|enumerate|what are the|which are the|"
    r"who are the|what were the|which were the)\b",
    re.IGNORECASE,
)
_NOT_PLURAL = {
    "is",
    "was",
    "has",
    "does",
    "this",
    "its",
    "us",
    "plus",
    "status",
    "process",
    "business",
    "address",
    "access",
    "success",
    "campus",
    "focus",
    "class",
    "less",
    "analysis",
    "basis",
    "thesis",
    "news",
    "series",
    "species",
    "gas",
    "bus",
}
# Auxiliary and modal verbs: they end a name's run of words.
AUXILIARIES = _QUESTION_VERBS | {"has", "have", "had", "will", "should", "may", "might"}


@dataclass(frozen=True)
class QuestionProfile:
    """What a question asks: its content terms, its names and the shape of a good answer."""

    text: str
    terms: tuple[str, ...]  # stemmed content terms, in question order, without repeats
    names: tuple[str, ...]  # proper names the question mentions ("Minalogic", "Smart Industri")
    frame: tuple[str, ...]  # terms naming the kind of answer ("town" in "In which town ..."),
    # which the answering sentence shows by example, not by word
    wants_list: bool
    answer_type: AnswerType | None

    @property
    def wants_number(self) -> bool:
        """True for "how many", "what percentage", "how much did it cost" and the like."""
        return self.answer_type in ("number", "money")

    @property
    def wants_date(self) -> bool:
        """True for "when", "what year" and the like."""
        return self.answer_type == "date"


def profile(question: str) -> QuestionProfile:
    """Analyses a question."""
    seen: dict[str, None] = {}
    for term in analyze(question):
        if term not in _QUESTION_STEMS and term not in seen:
            seen[term] = None
    # "In which town ...", "What year ...": the noun names the kind of answer. ("How many
    # partners ..." is different: the partners must be in the answer.)
    kind = _FRAME.search(question)
    frame = tuple(t for t in analyze(kind.group(2)) if t in seen) if kind else ()
    return QuestionProfile(
        text=question,
        terms=tuple(seen),
        names=tuple(proper_names(question)),
        frame=frame,
        wants_list=_wants_list(question),
        answer_type=_answer_type(question),
    )


_QUESTION_STEMS = frozenset(analyze(" ".join(_QUESTION_WORDS)))
_FRAME = re.compile(rf"\b(which|what)\s+(?:\w+\s+)?({_NAME_NOUNS}|years?|dates?|months?|days?)\b", re.IGNORECASE)


def _answer_type(question: str) -> AnswerType | None:
    if _MONEY_CUES.search(question) and not re.search(r"\bhow many\b", question, re.IGNORECASE):
        return "money"
    if _NUMBER_CUES.search(question):
        return "number"
    if _DATE_CUES.search(question):
        return "date"
    if _REASON_CUES.search(question):
        return "reason"
    if _NAME_CUES.search(question):
        return "name"
    return None


def proper_names(text: str, *, skip_first: bool = True) -> list[str]:
    """Returns the names in a text: capitalised words (not opening a sentence), acronyms,
    words with inner capitals or digits ("microTEC", "MetaIndustry4"), joined into runs."""
    names: list[str] = []
    run: list[str] = []
    sentence_start = True
    for match in NAME_TOKEN.finditer(text):
        token = match.group(0)
        before = text[max(0, match.start() - 2) : match.start()]
        if re.search(r"[.!?:]\s*$|^\s*$", before) and match.start() > 0:
            sentence_start = True
        if is_name_token(token, sentence_start and skip_first):
            run.append(token)
        elif run and (token.lower() in _JOINERS or (token.lower() == "the" and run[-1].lower() in _JOINERS)):
            run.append(token)
            sentence_start = False
            continue
        elif run:
            names.append(_trim_run(run))
            run = []
        sentence_start = False
    if run:
        names.append(_trim_run(run))
    return [n for n in names if n]


_JOINERS = {"de", "of", "di", "du", "von", "van", "der", "&", "y", "i"}
# Words English capitalises that name no organisation, place or person.
_CAPITALISED_WORDS = {
    *MONTHS,
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
}


def _trim_run(run: list[str]) -> str:
    while run and (run[-1].lower() in _JOINERS or run[-1].lower() == "the"):
        run = run[:-1]
    return " ".join(run)


def is_name_token(token: str, at_sentence_start: bool = False) -> bool:
    """Tells whether a word looks like (part of) a name."""
    lower = token.lower()
    if len(token) >= 2 and token.isupper() and any(c.isalpha() for c in token):
        return True  # an acronym, even one that spells a common word: "IT", "CEP"
    if lower in STOPWORDS or lower in _QUESTION_WORDS or lower in _CAPITALISED_WORDS:
        return False
    inner = any(c.isupper() for c in token[1:]) or (any(c.isdigit() for c in token) and any(c.isalpha() for c in token))
    if inner:
        return True
    if not token[:1].isupper():
        return False
    return not at_sentence_start


def _wants_list(question: str) -> bool:
    if _LIST_OPENERS.search(question):
        return True
    tokens = re.findall(r"[^\W_]+", question)
    while tokens and tokens[0].lower() in {"and", "so", "also", "then", "but"}:
        tokens = tokens[1:]
    if not tokens or tokens[0].lower() not in {"which", "what"}:
        return False  # "Who finances ..." has a verb after the question word, not a noun
    # "Which partners hold ...", "What other regions are ...", "Which of the clusters ...":
    # the noun after the question word is plural ("Which cluster represents ..." is not).
    for token in tokens[1:6]:
        lower = token.lower()
        if lower in AUXILIARIES or lower in {"one", "single"}:
            return False
        if token[:1].isupper() or lower in _NOUN_MODIFIERS:
            continue
        return len(lower) > 3 and lower.endswith("s") and not lower.endswith("ss") and lower not in _NOT_PLURAL
    return False


_NOUN_MODIFIERS = {
    "of",
    "the",
    "other",
    "main",
    "different",
    "key",
    "major",
    "additional",
    "two",
    "three",
    "four",
    "five",
    "several",
    "many",
    "all",
    "partner",
    "member",
}


def mentions(passage_folded: str, name: str) -> bool:
    """Tells whether a folded text (see `fold`) mentions a name."""
    # A name is mentioned when its words stand together, each recognised by its first five
    # letters: "Catalan" finds "Catalonia", "Four Motors" finds "4 Motors", and "Smart
    # Industri" needs those two words side by side, not "smart" here and "industry" there.
    # A one-word name needs all but its last four letters: "Industrinatten" is no "Industrie".
    words = [w for w in re.findall(r"[^\W_]+", fold(name)) if len(w) > 2 or w.isdigit()]
    if not words:
        return True
    keep = 5 if len(words) > 1 else None
    parts = [
        (f"(?:{re.escape(w)}|{_NUMBER_WORDS[w]})" if w in _NUMBER_WORDS else re.escape(w[: keep or max(5, len(w) - 4)]))
        + r"[^\W_]*"
        for w in words
    ]
    # Between the words may stand a particle ("Centro de Portugal") or the word
    # "region" ("Centro region Portugal").
    joint = r"(?:[\W_]+(?:(?:de|of|di|du|von|van|der|la|le|region)[\W_]+)?)"
    return re.search(r"(?<![^\W_])" + joint.join(parts), passage_folded) is not None


_NUMBER_WORDS = {
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
}
