"""Which reader read a page's article: a digest of everything the article
depends on besides the page's bytes and Content-Type.

A snapshot stores it with its text; a later capture of the same payload and
Content-Type under the same reader takes that text instead of extracting
again (``CaptureTakeover.reusable_article``). The code part is the source of
the modules that decide the article, read when this module is imported --
which :mod:`archiver.changes.extract` does as it is imported itself -- so it
is the code this process runs, even if the files are replaced under it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import lxml.etree as etree

if TYPE_CHECKING:
    from archiver.changes.bounds import ExtractLimits


def _code_digest() -> str | None:
    """SHA-256 of the modules whose code decides what a page reads as, read
    as this process imports them; None when they cannot be read."""
    h = hashlib.sha256()
    here = Path(__file__).parent
    try:
        for name in ("extract", "bounds", "furniture", "decode", "figures"):
            h.update((here / f"{name}.py").read_bytes())
    except OSError:
        return None
    return h.hexdigest()


_CODE = _code_digest()


@functools.lru_cache(maxsize=16)
def reader_id(limits: ExtractLimits, language_hint: str | None) -> str | None:
    """What a page's article depends on besides its bytes and Content-Type, as
    a short digest: the code that reads it (the source of the modules that
    decide it, so any change to them counts without a version to bump), the
    versions of trafilatura, jusText, lxml, libxml2 and Python, and the
    limits and language hint it is read with. Two captures of the same
    payload and Content-Type under the same id read the same article, so the
    second may take the first's stored text (``CaptureTakeover.reusable_article``).
    None when the code cannot be read (then nothing is reused)."""
    from importlib import metadata

    if _CODE is None:
        return None

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "?"

    return hashlib.sha256(json.dumps({
        "code": _CODE, "limits": asdict(limits), "language_hint": language_hint,
        "trafilatura": version("trafilatura"), "justext": version("jusText"), "lxml": list(etree.LXML_VERSION),
        "libxml2": list(etree.LIBXML_VERSION), "python": sys.version, "unicode": unicodedata.unidata_version,
    }, sort_keys=True).encode("utf-8")).hexdigest()[:32]
