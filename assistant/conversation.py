"""Conversation history -> a standalone question, by rules (no model to download).

"How many members does it have?" after a question about Clúster Digital de Catalunya becomes
"How many members does Clúster Digital de Catalunya have?"; "and which one holds a Silver
label?" after "Which partners hold a Gold label?" becomes "which partner holds a Silver
label?"; "what about Lombardy?" repeats the previous question about Lombardy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.records import Turn

_QUESTION_WORDS = {
    "which", "what", "who", "whom", "whose", "when", "where", "why", "how", "is", "are", "does",
    "do", "did", "was", "were", "can", "could", "and", "tell", "list", "name", "give", "show",
    "please", "in", "the", "a", "an", "of", "for", "about", "i", "and", "but", "so", "also",
}
_JOINERS = {"de", "del", "della", "di", "da", "do", "dos", "du", "des", "la", "le", "von", "van",
            "der", "den", "of", "&", "and", "für", "y", "i", "e"}
_PRONOUN = re.compile(r"\b(it|its|it's|they|them|their|theirs|this one|that one|these|those|there|he|she|his|her)\b", re.IGNORECASE)
_ELLIPSIS = re.compile(r"^\s*(and|what about|how about|and what about|same for|and for)\s+(?P<rest>.+?)\s*\??\s*$", re.IGNORECASE)
_WHICH_ONE = re.compile(r"\b(which|what)\s+(one|ones)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W_][\w'’&.-]*[^\W_]|[^\W_]|&")


def names_in(text: str) -> list[str]:
    """Returns the proper names in a text: runs of capitalised words ("Clúster Digital de Catalunya")."""
    tokens = [(m.group(0), m.start()) for m in _WORD.finditer(text)]
    names: list[str] = []
    current: list[str] = []
    for i, (token, _) in enumerate(tokens):
        capital = token[:1].isupper() or _has_inner_capital_or_digit(token)
        first_of_sentence = i == 0
        if capital and not (first_of_sentence and token.lower() in _QUESTION_WORDS):
            current.append(token)
            continue
        if current and token.lower() in _JOINERS and i + 1 < len(tokens) and tokens[i + 1][0][:1].isupper():
            current.append(token)
            continue
        if current:
            names.append(" ".join(current))
            current = []
    if current:
        names.append(" ".join(current))
    return [n for n in names if n.lower() not in _QUESTION_WORDS]


def _has_inner_capital_or_digit(token: str) -> bool:
    return any(c.isupper() for c in token[1:]) or (any(c.isdigit() for c in token) and any(c.isalpha() for c in token))


def _category(question: str) -> str:
    # "Which partners hold ..." -> "partner"
    match = re.match(r"^\s*(?:and\s+)?(?:which|what)\s+(?:of\s+the\s+)?(?:\w+\s+)??([a-z]{4,}s)\b", question, re.IGNORECASE)
    if not match:
        return ""
    plural = match.group(1)
    if plural.lower().endswith("ies"):
        return plural[:-3] + "y"
    return plural[:-1]


def _list_items(answer: str) -> str:
    # The lead line of a list answer names its items: "A [1], B [2] and C [3]."
    lead = answer.strip().split("\n", 1)[0]
    if "[" not in lead or "\n" not in answer.strip():
        return ""
    return re.sub(r"\s*\[\d+\]", "", lead).rstrip(". ")


def standalone_question(question: str, history: Sequence[Turn]) -> str:
    """Rewrites a follow-up into a question that can be searched on its own."""
    users = [t.content for t in history if t.role == "user" and t.content.strip()]
    if not users:
        return question
    # Resolve the previous questions first: a chain of follow-ups keeps its subject.
    previous = users[0]
    for later in users[1:]:
        previous = _resolve(later, previous, "")
    last_answer = next((t.content for t in reversed(history) if t.role == "assistant"), "")
    return _resolve(question, previous, last_answer)


def _resolve(question: str, previous: str, previous_answer: str) -> str:
    own_names = names_in(question)
    ellipsis = _ELLIPSIS.match(question)
    if ellipsis and not _WHICH_ONE.search(question) and len(ellipsis["rest"].split()) <= 6:
        # "what about Lombardy?" -> the previous question, about Lombardy instead.
        rest = ellipsis["rest"]
        old = names_in(previous)
        if old and names_in(rest):
            return previous.replace(old[0], names_in(rest)[0], 1)
        return f"{previous.rstrip(' ?')} {rest}?"
    which_one = _WHICH_ONE.search(question)
    if which_one:
        category = _category(previous)
        if category:
            question = question[: which_one.start()] + f"{which_one.group(1)} {category}" + question[which_one.end() :]
            return re.sub(r"^\s*and\s+", "", question, flags=re.IGNORECASE)
    if own_names and not _PRONOUN.search(question):
        return question
    subject = _subject(previous, previous_answer)
    if not subject:
        return question
    pronoun = _PRONOUN.search(question)
    if pronoun:
        word = pronoun.group(1).lower()
        replacement = subject + "'s" if word in {"its", "their", "his", "her"} else subject
        if word == "there":
            replacement = f"in {subject}"
        return question[: pronoun.start()] + replacement + question[pronoun.end() :]
    if len(question.split()) <= 8:
        return f"{question.rstrip(' ?')} ({subject})?"
    return question


def _subject(previous: str, previous_answer: str) -> str:
    names = names_in(previous)
    if names:
        return max(names, key=len)
    return _list_items(previous_answer)
