"""Conversation history -> a standalone question, by rules (no model to download).

The subject of a follow-up is what the conversation was last about:
- the answer itself, when the previous question asked for one ("Which cluster represents
  Lombardy?" -> "AFIL ..."; then "What does it do?" is about AFIL), or its items for "they";
- otherwise the name the previous question was about ("What is Clúster Digital de
  Catalunya?"; then "How many members does it have?" is about Clúster Digital de Catalunya),
  or failing a name, its rarest word.
Then "it"/"its"/"they"/"there" are replaced by that subject, "which one" takes the previous
question's noun ("and which one holds a Silver label?" after "Which partners hold a Gold
label?" -> "which partner holds a Silver label?"), and "what about Lombardy?" repeats the
previous question with Lombardy in place of its last name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from assistant.question import AUXILIARIES, profile, proper_names
from assistant.records import Turn
from assistant.text import STOPWORDS

_PRONOUN = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this one|that one|these|those|there|he|she|his|her)\b",
    re.IGNORECASE,
)
_PLURAL_PRONOUNS = {"they", "them", "their", "theirs", "these", "those"}
_ELLIPSIS = re.compile(
    r"^\s*(and|what about|how about|and what about|same for|and for|what of)\s+(?P<rest>.+?)\s*\??\s*$",
    re.IGNORECASE,
)
_WHICH_ONE = re.compile(r"\b(which|what)\s+(one|ones)\b", re.IGNORECASE)
_LEADING_AND = re.compile(r"^\s*(and|so|but)\s+", re.IGNORECASE)

Rarity = Callable[[str], float]


def standalone_question(question: str, history: Sequence[Turn], rarity: Rarity | None = None) -> str:
    """Rewrites a follow-up into a question that can be searched on its own.

    `rarity` (a word's inverse document frequency) picks the subject of an earlier question
    that names nothing ("When was bwcon founded?" -> "bwcon").
    """
    turns = [t for t in history if t.content.strip()]
    if not any(t.role == "user" for t in turns):
        return question
    # Resolve earlier follow-ups first, so that a chain of them keeps its subject.
    previous = ""
    previous_answer = ""
    for turn in turns:
        if turn.role == "user":
            previous = _resolve(turn.content, previous, previous_answer, rarity) if previous else turn.content
            previous_answer = ""
        else:
            previous_answer = turn.content
    return _resolve(question, previous, previous_answer, rarity)


def _resolve(question: str, previous: str, previous_answer: str, rarity: Rarity | None) -> str:
    ellipsis = _ELLIPSIS.match(question)
    if ellipsis and not _WHICH_ONE.search(question) and len(ellipsis["rest"].split()) <= 6:
        # "what about Lombardy?" -> the previous question, about Lombardy instead.
        rest = ellipsis["rest"]
        old, new = proper_names(previous), proper_names(rest, skip_first=False)
        if old and new:
            return _replace_last(previous, old[-1], new[0])
        return f"{previous.rstrip(' ?')} {rest}?"
    which_one = _WHICH_ONE.search(question)
    if which_one:
        category = _category(previous)
        if category:
            question = f"{question[: which_one.start()]}{which_one.group(1)} {category}{question[which_one.end() :]}"
            return _LEADING_AND.sub("", question)
    pronoun = _PRONOUN.search(question)
    if not pronoun:
        if proper_names(question) or len(question.split()) > 8:
            return question
        subject = _subject(previous, previous_answer, plural=False, rarity=rarity)
        return f"{question.rstrip(' ?')} ({subject})?" if subject else question
    word = pronoun.group(1).lower()
    subject = _subject(previous, previous_answer, plural=word in _PLURAL_PRONOUNS, rarity=rarity)
    if not subject:
        return question
    if word in {"its", "their", "his", "her", "theirs"}:
        replacement = subject + "'s"
    elif word == "there":
        replacement = f"in {subject}"
    else:
        replacement = subject
    rewritten = question[: pronoun.start()] + replacement + question[pronoun.end() :]
    return _LEADING_AND.sub("", rewritten)


def _subject(previous: str, previous_answer: str, *, plural: bool, rarity: Rarity | None) -> str:
    asked = profile(previous)
    # "Which cluster ...?" asked for a thing: "it" is the answer. After "Who ...?", "it" is
    # still what the question was about (the answer is a person or an organiser).
    asks_for_thing = asked.answer_type == "name" and re.match(r"^\s*(and\s+)?(which|what)\b", previous, re.I)
    if previous_answer and asks_for_thing:
        items = _list_items(previous_answer)
        if plural and items:
            return items
        if not asked.wants_list:
            answer_names = proper_names(previous_answer, skip_first=False)
            if answer_names:
                return answer_names[0]
    names = proper_names(previous)
    if names:
        return _with_head_noun(previous, max(names, key=len))
    if rarity is not None:
        words = [w for w in re.findall(r"[^\W\d_][\w-]*", previous) if w.lower() not in STOPWORDS]
        # Prefer words that are not verb forms ("bwcon" over "founded").
        nouns = [w for w in words if not w.lower().endswith(("ed", "ing"))] or words
        if nouns:
            return str(max(nouns, key=lambda w: rarity(w.lower())))
    return ""


def _with_head_noun(question: str, name: str) -> str:
    # "the Florence workshop on ..." -> "Florence workshop": a name and the noun it qualifies.
    match = re.search(re.escape(name) + r"((?:\s+[a-z][\w-]*){0,2})", question)
    if not match:
        return name
    tail = []
    for word in match.group(1).split():
        if word.lower() in STOPWORDS or word.lower() in AUXILIARIES:
            break
        tail.append(word)
    if tail and not tail[-1].endswith(("ed", "ing", "s")):
        return " ".join([name, *tail])
    return name


def _replace_last(text: str, old: str, new: str) -> str:
    index = text.rfind(old)
    return text[:index] + new + text[index + len(old) :]


def _category(question: str) -> str:
    # "Which partners hold ..." -> "partner"
    match = re.match(
        r"^\s*(?:and\s+)?(?:which|what)\s+(?:of\s+the\s+)?(?:\w+\s+)??([a-z]{4,}s)\b", question, re.IGNORECASE
    )
    if not match:
        return ""
    plural = match.group(1)
    if plural.lower().endswith("ies"):
        return plural[:-3] + "y"
    return plural[:-1]


def _list_items(answer: str) -> str:
    # The lead line of an answer names its items: "A [1], B [2] and C [3]." or "A, B and C."
    lead = answer.strip().split("\n", 1)[0]
    lead = re.sub(r"\s*\[\d+\]", "", lead)
    lead = re.sub(r"\s*\([^)]*\)", "", lead).rstrip(". ")
    names = proper_names(lead, skip_first=False)
    # A list of names, not a sentence that happens to contain two.
    if len(names) < 2 or sum(len(n) for n in names) < 0.6 * len(lead.replace(",", "").replace(" and ", " ")):
        return ""
    return lead
