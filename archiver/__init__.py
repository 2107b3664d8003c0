"""archiver: content archival and provenance for web pages that get edited."""

# warcio's recorder patches http.client.HTTPConnection; urllib3 subclasses it
# when first imported, so the patch must come before anything imports requests.
from warcio import capture_http as _capture_http  # noqa: F401

__version__ = "0.1.0"
