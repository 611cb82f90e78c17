"""Extracts the text of one PDF, page by page; run as a child process with limits.

    python -m assistant.ingest.pdf FILE  ->  JSON on stdout: {"pages": [...]} or {"error": "..."}

A hostile PDF (a decompression bomb, a broken cross-reference table, millions of pages) can
make a parser hang or eat all memory. Running it in a child process under a time and memory
limit (see `documents.extract_pdf`) means such a file costs one skipped document, never the
indexing run.
"""

from __future__ import annotations

import json
import sys

MAX_PAGES = 5000


def extract(path: str) -> dict[str, object]:
    """Returns {"pages": [text, ...]} or {"error": reason} for the PDF at `path`."""
    import logging

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    # pypdf logs every recoverable oddity of a damaged file; the parent reports the outcome.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            try:
                decrypted = bool(reader.decrypt(""))
            except (NotImplementedError, PyPdfError, ValueError):
                decrypted = False
            if not decrypted:
                return {"error": "encrypted PDF (password-protected): save an unprotected copy"}
        count = len(reader.pages)
        if count > MAX_PAGES:
            return {"error": f"{count} pages, more than the {MAX_PAGES} allowed"}
        return {"pages": [page.extract_text() or "" for page in reader.pages]}
    except (PdfReadError, PyPdfError) as exc:
        return {"error": f"not a readable PDF ({type(exc).__name__}: {str(exc)[:120]})"}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        # pypdf raises plain exceptions on some malformed structures.
        return {"error": f"malformed PDF ({type(exc).__name__}: {str(exc)[:120]})"}
    except RecursionError:
        return {"error": "malformed PDF (nested too deeply)"}


def main() -> None:
    """Entry point of the child process."""
    result = extract(sys.argv[1])
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
