"""/api/documents: listing, full text, and the cited passage with its context."""

from __future__ import annotations

from assistant.pipeline import Assistant
from tests.conftest import FACT_QUESTION
from tests.service.conftest import LiveServer


def test_lists_documents(server: LiveServer, assistant: Assistant) -> None:
    with server.client() as client:
        body = client.get("/api/documents").json()
    ids = [d["id"] for d in body["documents"]]
    assert ids == sorted(assistant.store.manifest.documents)
    first = body["documents"][0]
    assert set(first) == {"id", "title", "language", "sections", "chunks", "chars"}
    assert first["chunks"] > 0 and first["sections"]


def test_returns_text_and_the_cited_passage(server: LiveServer, assistant: Assistant) -> None:
    with server.client() as client:
        answer = client.post("/api/chat", json={"message": FACT_QUESTION}).json()
        citation = answer["citations"][0]
        document = client.get(f"/api/documents/{citation['doc']}")
        assert document.status_code == 200
        text = document.json()["text"]
        assert text == assistant.store.document(citation["doc"]).text
        assert document.json()["sections"][0]["title"]

        passage = client.get(
            f"/api/documents/{citation['doc']}",
            params={"start": citation["start"], "end": citation["end"]},
        )
        assert passage.status_code == 200
        shown = passage.json()
        assert shown["quote"] == citation["quote"]
        assert shown["section"] == citation["section"]
        assert shown["before"] == text[max(0, citation["start"] - len(shown["before"])) : citation["start"]]
        assert 0 < len(shown["before"]) <= 300 and 0 < len(shown["after"]) <= 300
        assert text[citation["end"] :].startswith(shown["after"])


def test_bad_ranges_and_unknown_documents(server: LiveServer) -> None:
    doc = "florence-industrial-modernisation-workshop.txt"
    with server.client() as client:
        assert client.get(f"/api/documents/{doc}", params={"start": 50, "end": 10}).status_code == 422
        assert client.get(f"/api/documents/{doc}", params={"start": 0, "end": 10**9}).status_code == 422
        assert client.get(f"/api/documents/{doc}", params={"start": 5}).status_code == 422
        negative = client.get(f"/api/documents/{doc}", params={"start": -1, "end": 5})
        assert negative.status_code == 422 and "start" in negative.json()["detail"]
        missing = client.get("/api/documents/no/such/file.txt")
        assert missing.status_code == 404
        assert "no/such/file.txt" in missing.json()["detail"]
