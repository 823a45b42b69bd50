"""How text becomes BM25 terms: the same rules for documents and queries.

Words are Unicode word runs, case-folded and stripped of accents ("Café" and "cafe" are one term,
so a French or Spanish query matches an English document spelling a name without them), minus a
short list of English stop words, with plural and -ing/-ed endings stripped (a light stemmer:
"purrs", "purring" and "purred" all match "purr").

Identifiers get an extra term. "ERR-4012", "v2.3.1" or "SKU_88/B" split into their parts, which
other identifiers share ("err", "4012"), and are also kept whole with the punctuation removed
("err4012"): that term is rare, so BM25 weighs an exact identifier match far above a match of its
parts, and "ERR4012" written without the dash still finds it. A word of letters and digits
("version0") stays one term, as before.
"""

from __future__ import annotations

import re
import unicodedata

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Word runs joined by identifier punctuation: error codes, part numbers, versions, paths.
_IDENTIFIER = re.compile(r"[^\W_]+(?:[-_./:#][^\W_]+)+", re.UNICODE)
_JOINERS = re.compile(r"[-_./:#]")
_JOINED = re.compile(r"[^\W_][-_./:#][^\W_]", re.UNICODE)

STOP_WORDS = frozenset(
    "a an and are as at be but by for from has have he her his how i if in into is it its me my no not of on "
    "or our she so than that the their them then there these they this to was we were what when where which "
    "who whom why will with you your does do did can".split()
)


def stem(word: str) -> str:
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    if word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def fold(text: str) -> str:
    """Case-folded, accents removed (NFKD, then combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if decomposed.isascii():
        return decomposed
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _word_terms(word: str) -> list[str]:
    return [] if word in STOP_WORDS else [stem(word)]


# word -> its terms. Text repeats words (Zipf), so a dict lookup replaces most of the per-word work,
# which is what indexing a large bank spends its time on. Cleared when it grows past the limit.
_WORD_TERMS: dict[str, tuple[str, ...]] = {}
_WORD_TERMS_LIMIT = 1 << 19


def terms(text: str) -> list[str]:
    folded = fold(text)
    found: list[str] = []
    known = _WORD_TERMS
    for word in _WORD.findall(folded):
        word_terms = known.get(word)
        if word_terms is None:
            if len(known) >= _WORD_TERMS_LIMIT:
                known.clear()
            word_terms = known[word] = tuple(_word_terms(word))
        found += word_terms
    if _JOINED.search(folded):  # a quick scan first: most text has no identifiers
        found += [_JOINERS.sub("", identifier) for identifier in _IDENTIFIER.findall(folded)]
    return found
