"""Provenance: the signed manifest, keys and signatures, the Merkle log and
its C2SP signed notes, the notary that ties them together, RFC 3161 tokens
and the W3C PROV view.

The only package that touches private keys (``keys``). May import:
``archiver.errors``, ``archiver.canonical``, ``archiver.config``,
``capture`` (the Capture a manifest describes), ``store``. Never
``changes``, ``audit``, ``daemon``, ``web`` or ``cli``.
"""
