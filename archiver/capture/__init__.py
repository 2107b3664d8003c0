"""Capture: one URL -> raw HTTP exchanges as WARC records.

Owns the one vetted outbound path (address policy, deadlines, caps), the
HTTP capture with exact wire bytes, and the building of request, response,
revisit and metadata records (later: requisites, a browser capture).

May import: ``archiver.errors``, ``archiver.canonical``, ``archiver.ids``,
``store``. Never ``changes``, ``provenance``, ``audit``, ``daemon``, ``web``
or ``cli``.
"""
