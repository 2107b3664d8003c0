"""Daemon: watched sources, the adaptive schedule, the scheduler and its
per-host dispatch, feeds, webhook notifications and the single-daemon lock.

Drives the ``Archive`` facade on a schedule. May import every library
package (``capture``, ``changes``, ``provenance``, ``audit``) and ``store``;
never ``web`` or ``cli``.
"""
