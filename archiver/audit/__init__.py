"""Audit: verify an archive, repair what a crash left, export and check WACZ.

Everything an auditor runs. Reads the archive through the ``Archive`` facade
and ``store``; checks signatures through ``provenance``. May import
``capture`` (record formats), ``changes``, ``provenance``, ``store``, the
facade. Never ``daemon``, ``web`` or ``cli``.
"""
