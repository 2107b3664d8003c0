"""archiver: content archival and provenance for web pages that get edited."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType

__version__ = "0.1.0"


class _RecorderFirst:  # a meta path finder (importlib.abc would cost more than it saves)
    """warcio's recorder patches http.client.HTTPConnection, and urllib3
    subclasses that class when first imported, so the patch must come before
    anything imports urllib3 (requests, botocore, the capture stack). Doing it
    when urllib3 is first asked for, instead of on ``import archiver``, keeps
    it off the start-up of commands that never fetch (verify, show, proof):
    the recorder pulls in http.client, email and warcio, about 30 ms."""

    installed = False

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name == "urllib3" and not _RecorderFirst.installed:
            _record_first()
        return None  # the ordinary finders import it; this one stays in place, inert (removing
        # it from sys.meta_path could make another thread's import, walking the list, skip a finder)


def _record_first() -> None:
    _RecorderFirst.installed = True
    from warcio import capture_http  # noqa: F401 - patches http.client


if "urllib3" in sys.modules:  # too late to be first; the capture stack's own check reports it
    _record_first()
elif not any(type(f).__name__ == _RecorderFirst.__name__ for f in sys.meta_path):
    sys.meta_path.insert(0, _RecorderFirst())
