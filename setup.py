"""The one native part: verify's scanner for small WARC records (store/_scanc.c).

It is optional: where it cannot be built (no compiler, no zlib or OpenSSL
headers) the install still succeeds and verify takes the pure-Python path,
which gives the same verdicts (tests/test_scan_native.py holds them equal).
Everything else about the package is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("store._scanc", ["store/_scanc.c"], libraries=["z", "crypto"], optional=True,
                             extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"])])
