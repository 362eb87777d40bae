"""SMS text: which encoding a body needs and how many segments it costs.

A single character outside GSM-7 (a curly quote, a non-breaking space) switches the whole
message to UCS-2 and cuts a segment from 160 to 70 characters, so lookalikes are replaced
first, and a body over the segment budget is shortened at a word boundary, never mid-character.
"""

from dataclasses import dataclass

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€\f")  # each costs two septets (escape + char)

LOOKALIKES = str.maketrans({
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u200b": "",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u2022": "-",
})


@dataclass(frozen=True)
class SmsText:
    text: str
    encoding: str  # "GSM-7" or "UCS-2"
    segments: int
    shortened: bool = False


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENDED for ch in text)


def units(text: str, encoding: str) -> int:
    """Septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding == "GSM-7":
        return sum(2 if ch in GSM7_EXTENDED else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def segment_count(text: str, encoding: str) -> int:
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    n = units(text, encoding)
    if n <= single:
        return 1
    return -(-n // multi)


def prepare(body: str, max_segments: int = 6) -> SmsText:
    """Normalise `body` for SMS and fit it into `max_segments`."""
    text = body.translate(LOOKALIKES)
    encoding = "GSM-7" if is_gsm7(text) else "UCS-2"
    if segment_count(text, encoding) <= max_segments:
        return SmsText(text, encoding, segment_count(text, encoding))
    ellipsis = "..." if encoding == "GSM-7" else "\u2026"
    budget = max_segments * (153 if encoding == "GSM-7" else 67) - units(ellipsis, encoding)
    kept, used = [], 0
    for ch in text:
        cost = units(ch, encoding)
        if used + cost > budget:
            break
        kept.append(ch)
        used += cost
    cut = "".join(kept)
    if " " in cut[len(cut) // 2:]:
        cut = cut[: cut.rindex(" ")]
    shortened = cut.rstrip() + ellipsis
    return SmsText(shortened, encoding, segment_count(shortened, encoding), shortened=True)
