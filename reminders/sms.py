"""Text a clinic's relay can send as one SMS: the GSM-7 alphabet, 160 characters.

A message with one character outside GSM-7 goes as UCS-2, where a single SMS holds only
70 characters, so letters the alphabet lacks ("ã", "ç", "á") are written without their
accents rather than splitting the message in three. Pure: no I/O.
"""

from __future__ import annotations

import unicodedata

LIMIT = 160  # septets in one SMS
# GSM 03.38: the basic set (one septet each) and the extension table (an escape and the
# character: two septets each).
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENDED = "^{}\\[~]|€\f"
# Typographic quotes, dashes, the ellipsis and no-break spaces, and letters NFKD does not
# take apart.
_NEAREST = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"',
    "\u201e": '"', "\u00ab": '"', "\u00bb": '"', "\u2013": "-", "\u2014": "-",
    "\u2026": "...", "\u00a0": " ", "\u202f": " ", "ª": "a", "º": "o", "ç": "c",
    "œ": "oe", "Œ": "OE",
}  # fmt: skip
_GSM7 = frozenset(BASIC + EXTENDED)
_ASCII_OUTSIDE = frozenset(chr(c) for c in range(128)) - _GSM7


def _nearest(character: str) -> str:
    if character in _GSM7:
        return character
    if character in _NEAREST:
        return _NEAREST[character]
    # "ã" is "a" and a combining tilde: keep the letter.
    bare = "".join(c for c in unicodedata.normalize("NFKD", character) if c in _GSM7)
    return bare or "?"


def to_gsm7(text: str) -> str:
    """Return `text` in the GSM-7 alphabet: what it lacks transliterated, else "?"."""
    if text.isascii() and _ASCII_OUTSIDE.isdisjoint(text):
        return text  # links, mostly
    return "".join(map(_nearest, text))


def _cut(text: str, length: int) -> str:
    """The first `length` characters, ending at a whole word where there is one."""
    if length >= len(text):
        return text
    kept = text[:length]
    return (kept.rsplit(" ", 1)[0] if " " in kept and text[length] != " " else kept).rstrip()


def septets(text: str) -> int:
    """How many septets GSM-7 `text` takes (extension characters take two)."""
    return len(text) + sum(map(text.count, EXTENDED))


def fit(template: str, shortened: str, **fixed: str) -> str:
    """Return `template` filled in, in GSM-7, within one SMS: `fixed` as they are (the
    link must stay whole) and the `shortened` field cut as far as needed.

    `template` uses %(name)s fields, as the catalogs do. A link too long to fit at all
    (a base URL of well over 60 characters) gets the text with `shortened` cut to
    nothing, in two SMS, rather than none.
    """
    fields = {name: to_gsm7(value) for name, value in fixed.items()}
    whole = fields.get(shortened, "")
    pattern = to_gsm7(template)
    for length in range(len(whole), -1, -1):
        text = pattern % {**fields, shortened: _cut(whole, length)}
        if septets(text) <= LIMIT:
            break
    # Cut to nothing, a name that began the text leaves its colon behind.
    return text.lstrip(" :") if length == 0 else text
