"""Changes: HTML -> article text; numbers and figures; diff and significance.

Pure functions over bytes and text: no network, no files, no keys, so the
same page always gives the same text and the same verdict.

May import: ``archiver.errors``, ``archiver.canonical``. Never ``capture``,
``provenance``, ``audit``, ``daemon``, ``web`` or ``cli``.
"""
