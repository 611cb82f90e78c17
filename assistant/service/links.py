"""Cited passages -> signed, expiring links to the readable source page, and their checks.

    {base}/source/{doc}?start=S&end=E&exp=T&sig=SIG

SIG is HMAC-SHA256 over the document id, S, E and T (a Unix time), base64url-encoded, so a
link opens exactly the passage it was made for, until T. The source page is outside /api: a
person clicking a link in Slack has no API key to send. When ASSISTANT_API_KEYS is set the page
asks for a valid signature instead; without API keys it is open, like /api/documents.

The key: ASSISTANT_LINK_SECRET when set, else one derived from ASSISTANT_SLACK_SIGNING_SECRET
(the links are made for Slack answers, so the bot always has one). Changing the secret in use
invalidates the links already given out; the API keys are not used, so rotating a key does not.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, urlencode

from assistant.config import Settings

LINK_DAYS = 30  # how long a link in a Slack answer opens its passage
_DERIVATION = b"assistant source links v1"  # keeps this key apart from Slack's own use of the secret


class LinkCheck(Enum):
    """What checking a link's signature found."""

    VALID = "valid"
    MISSING = "missing"  # no sig or exp in the link
    INVALID = "invalid"  # a signature that does not match (tampered, or another secret)
    EXPIRED = "expired"
    NO_KEY = "no key"  # the service has no secret to check links with


@dataclass(frozen=True)
class LinkSigner:
    """Signs (doc, start, end, expiry) with a server secret and checks such signatures."""

    key: bytes
    lifetime_s: int = LINK_DAYS * 86_400

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkSigner | None:
        """Returns the signer for the configured secret, or None when no secret is set."""
        if settings.link_secret is not None:
            return cls(hashlib.sha256(settings.link_secret.get_secret_value().encode()).digest())
        if settings.slack_signing_secret is not None:
            secret = settings.slack_signing_secret.get_secret_value().encode()
            return cls(hmac.new(secret, _DERIVATION, hashlib.sha256).digest())
        return None

    def signature(self, doc: str, start: int, end: int, expires: int) -> str:
        """Returns the signature of a link to doc[start:end] that expires at `expires`."""
        # JSON keeps the fields apart whatever a document id holds.
        message = json.dumps([doc, start, end, expires], ensure_ascii=False).encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def query(self, doc: str, start: int, end: int, now: float | None = None) -> dict[str, str]:
        """Returns the query parameters of a signed link to doc[start:end], valid from `now`."""
        expires = int(time.time() if now is None else now) + self.lifetime_s
        sig = self.signature(doc, start, end, expires)
        return {"start": str(start), "end": str(end), "exp": str(expires), "sig": sig}

    def check(
        self, doc: str, start: int, end: int, expires: int | None, sig: str | None, now: float | None = None
    ) -> LinkCheck:
        """Checks a link's signature and expiry."""
        if expires is None or not sig:
            return LinkCheck.MISSING
        expected = self.signature(doc, start, end, expires)
        # Constant time: how much of a guessed signature matches must not show in the timing.
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            return LinkCheck.INVALID
        if expires < (time.time() if now is None else now):
            return LinkCheck.EXPIRED
        return LinkCheck.VALID


def source_path(doc: str) -> str:
    """Returns the source page's path for a document id: /source/reports/2024%20q1.txt."""
    return "/source/" + quote(doc, safe="/")


def source_url(base: str, doc: str, start: int, end: int, signer: LinkSigner | None) -> str:
    """Returns the address of the source page showing doc[start:end], signed when it can be."""
    query = signer.query(doc, start, end) if signer else {"start": str(start), "end": str(end)}
    return f"{base.rstrip('/')}{source_path(doc)}?{urlencode(query)}"
