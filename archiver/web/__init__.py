"""``archiver serve``: the web audit desk, the JSON API, feeds, Memento and log tiles.

A thin layer over the :class:`archiver.archive.Archive` facade and the store:
handlers read through the facade (read transactions only, so it runs beside a
daemon writing the same archive) and render Jinja2 templates with autoescaping.
"""
