"""The archive at rest, readable without the service.

WARC reading and writing (``warc``, ``scan``), the index tables (``index``)
and the log tables (``logdb``). Never imports ``archiver``: an auditor can
read an archive with this package and the standards alone.
"""
