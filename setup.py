"""The native parts of verify, both optional: where they cannot be built (no
compiler, no zlib or OpenSSL headers) the install still succeeds and verify
takes the pure-Python path, which gives the same verdicts
(tests/test_scan_native.py and tests/test_claims_native.py hold them equal).

- ``store._scanc`` (store/_scanc.c): the scanner for small WARC records;
- ``archiver.audit._claimsc`` (archiver/audit/_claimsc.c): signed manifests
  and intents read, and a manifest's Ed25519 signature checked, in one call;
- ``archiver.audit._matchc`` (archiver/audit/_matchc.c): a scanning task's
  bookkeeping of plain records, many in one call.

Everything else about the package is in pyproject.toml.
"""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]

setup(ext_modules=[
    Extension("store._scanc", ["store/_scanc.c"], libraries=["z", "crypto"], optional=True, extra_compile_args=FLAGS),
    Extension("archiver.audit._claimsc", ["archiver/audit/_claimsc.c"], libraries=["crypto"], optional=True,
              extra_compile_args=FLAGS),
    Extension("archiver.audit._matchc", ["archiver/audit/_matchc.c"], optional=True, extra_compile_args=FLAGS),
])
