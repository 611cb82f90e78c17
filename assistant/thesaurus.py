"""A small English thesaurus of the words questions and documents say differently.

A question asks where a cluster is "based" and the document says "located"; it asks for the
"population" and the document counts "inhabitants". Each group below holds words that answer
for one another in factual questions; they are compared as index terms (stemmed by
`text.analyze`). Only general English, nothing about any corpus.
"""

from __future__ import annotations

from functools import cache

from assistant.text import analyze

GROUPS = (
    "based located situated headquartered",
    "population inhabitants residents",
    "leads led heads coordinates manages directs charge",
    "founded established created launched",
    "moderated chaired",
    "goal aim objective purpose ambition",
    "cost price fee",
    "combined together total joint",
    "consists comprises includes gathers composed",
    "attended participated",
    "funded financed sponsored",
    "received awarded granted obtained earned won",
    "employees staff workers employs",
    "began started commenced",
    "built constructed",
    "bought purchased acquired",
    "born birth",
    "called named",
    "town city municipality",
    "largest biggest",
    "increased grew rose",
    "decreased declined fell dropped",
)


@cache
def _related() -> dict[str, frozenset[str]]:
    related: dict[str, set[str]] = {}
    for group in GROUPS:
        stems = set(analyze(group))
        for stem in stems:
            related.setdefault(stem, set()).update(stems - {stem})
    return {stem: frozenset(others) for stem, others in related.items()}


def related_terms(term: str) -> frozenset[str]:
    """Returns the index terms that may stand for `term` ("locat" for "base")."""
    return _related().get(term, frozenset())
