"""Text shown on a terminal: every control or invisible formatting character written as an escape.

One rule for the tables (``outputs.render``) and for messages that echo text the program did not write (DuckDB's
errors in ``osteo sql``: ``publish.catalog``), kept here, below both, so each can use it.

Escaped (``\\x1b``, ``\\n``, ``\\u202e``, ``\\U000e0041``): C0 (ESC, BEL, …), DEL and C1; the line and paragraph
separators; the bidirectional marks, embeddings, overrides and isolates (U+061C, U+200E, U+200F, U+202A–U+202E,
U+2066–U+2069), which reorder what is shown; and the invisible characters that make two different texts look the
same or hide text (soft hyphen U+00AD, U+180E, zero-width space, non-joiner and joiner U+200B–U+200D, word joiner
and invisible operators U+2060–U+2064, the deprecated format characters U+206A–U+206F, the byte order mark
U+FEFF, the interlinear annotation marks U+FFF9–U+FFFB and the tag characters U+E0000–U+E007F).
"""

from __future__ import annotations

import re

CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff"
    "\ufff9-\ufffb\U000e0000-\U000e007f]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape_controls(text: str) -> str:
    """``text`` with every control or invisible formatting character written as an escape (``\\x1b``)."""
    return CONTROL.sub(_escape_one, text)
