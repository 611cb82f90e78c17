"""Builds small PDF files for tests: real text pages, and the broken kinds users drop in."""

from __future__ import annotations

import io
import zlib
from pathlib import Path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def text_pdf(pages: list[list[str]]) -> bytes:
    """Returns a valid PDF whose pages show the given lines of text (Latin-1 only)."""
    objects: list[bytes] = []
    page_ids = []
    font_id = 3
    # 1: catalog, 2: pages, 3: font, then a page object and a content stream per page.
    for i, lines in enumerate(pages):
        page_id = 4 + 2 * i
        content_id = page_id + 1
        page_ids.append(page_id)
        stream = "BT /F1 11 Tf 14 TL 72 760 Td " + " ".join(f"({_escape(line)}) Tj T*" for line in lines) + " ET"
        data = stream.encode("latin-1")
        objects.append(
            f"{page_id} 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R >> endobj\n".encode()
        )
        objects.append(
            f"{content_id} 0 obj << /Length {len(data)} >> stream\n".encode() + data + b"\nendstream endobj\n"
        )
    kids = " ".join(f"{p} 0 R" for p in page_ids)
    head = [
        b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
        f"2 0 obj << /Type /Pages /Kids [{kids}] /Count {len(page_ids)} >> endobj\n".encode(),
        b"3 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >> endobj\n",
    ]
    return _assemble(head + objects)


def _assemble(objects: list[bytes]) -> bytes:
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for obj in objects:
        offsets.append(out.tell())
        out.write(obj)
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(f"trailer << /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def image_only_pdf() -> bytes:
    """Returns a PDF whose only page draws a shape and holds no text (like a scan)."""
    drawing = b"0.5 g 72 72 400 600 re f"
    objects = [
        b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n",
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n",
        f"4 0 obj << /Length {len(drawing)} >> stream\n".encode() + drawing + b"\nendstream endobj\n",
    ]
    return _assemble(objects)


def encrypted_pdf(password: str = "secret") -> bytes:
    """Returns a text PDF encrypted with a user password."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf([["Confidential plans."]]))))
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def corrupt_pdf() -> bytes:
    """Returns bytes that start like a PDF and are garbage after."""
    return b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\nthis is not a pdf body\n"


def truncated_pdf() -> bytes:
    """Returns a real PDF cut off halfway."""
    data = text_pdf([["A page that never ends."] * 20])
    return data[: len(data) // 2]


def bomb_pdf(megabytes: int = 1500) -> bytes:
    """Returns a PDF whose one content stream inflates to `megabytes` of zeros."""
    compressor = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    deflated = b"".join(compressor.compress(chunk) for _ in range(megabytes)) + compressor.flush()
    objects = [
        b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
        b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n",
        b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >> endobj\n",
        f"4 0 obj << /Length {len(deflated)} /Filter /FlateDecode >> stream\n".encode()
        + deflated
        + b"\nendstream endobj\n",
    ]
    return _assemble(objects)


def write(path: Path, data: bytes) -> Path:
    """Writes bytes to a path and returns it."""
    path.write_bytes(data)
    return path


def broken_xref_pdf() -> bytes:
    """Returns a PDF whose cross-reference table points at the wrong offsets."""
    data = text_pdf([["Cross references lie."]])
    head, _, tail = data.partition(b"xref\n")
    return head + b"xref\n" + tail.replace(b" 00000 n ", b" 00099 n ").replace(b"0000000", b"9999999", 3)


def many_pages_pdf(pages: int = 6000) -> bytes:
    """Returns a valid PDF with a great many (empty) pages."""
    objects = [b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"]
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    objects.append(f"2 0 obj << /Type /Pages /Kids [{kids}] /Count {pages} >> endobj\n".encode())
    for i in range(pages):
        objects.append(f"{3 + i} 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >> endobj\n".encode())
    return _assemble(objects)


def page_tree_loop_pdf() -> bytes:
    """Returns a PDF whose page tree contains itself (a cycle)."""
    objects = [
        b"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n",
        b"2 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >> endobj\n",
        b"3 0 obj << /Type /Pages /Parent 2 0 R /Kids [2 0 R] /Count 1 >> endobj\n",
    ]
    return _assemble(objects)
