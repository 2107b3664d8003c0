"""The answers botocore reads whole -- a listing page, an error, the answer to
a HEAD, PUT or DELETE -- read within a cap.

botocore reads such a body into memory in one piece before parsing it, so a
store answering ListObjectsV2 with a 1 GB page had the reader hold it all
(and the parsed XML besides). :func:`bound_answers` hooks botocore's
``before-send`` event, the documented way to answer a request in its place:
the request (signed as botocore built it) is sent by botocore's own HTTP
session, so TLS, proxies, pooling and the timeouts stay botocore's, but with
the body left unread; it is then read here to at most
:data:`MAX_ANSWER_BYTES` and given to botocore's parser as it would have
been. A GET's body that succeeded is left to the caller, which reads no more
than it asked for (store.objects).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from store.errors import StoreError

# A page of 1,000 keys is at most ~3 MB (1 KiB keys, URL-encoded); the rest
# of these answers are a few KiB.
MAX_ANSWER_BYTES = 16 << 20
_PIECE = 1 << 20


class AnswerTooLarge(StoreError):
    """The store's answer is longer than any such answer can be."""


class _Read:
    """A body read already, as botocore's AWSResponse takes it."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        if self._data:
            yield self._data

    def read(self, amt: int | None = None) -> bytes:
        data, self._data = (self._data, b"") if amt is None else (self._data[:amt], self._data[amt:])
        return data

    def close(self) -> None:
        self._data = b""


def bound_answers(client: Any, cap: int = MAX_ANSWER_BYTES) -> None:
    """Make ``client`` (a boto3 S3 client) read every answer it would buffer to
    at most ``cap`` bytes; a longer one raises :class:`AnswerTooLarge`."""
    from botocore.awsrequest import AWSResponse
    from botocore.exceptions import ConnectionClosedError, HTTPClientError, ReadTimeoutError
    from urllib3.exceptions import ProtocolError
    from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError

    session = client._endpoint.http_session

    def send(request: Any, **kwargs: Any) -> Any:
        streamed = request.stream_output
        request.stream_output = True  # the status and headers only: the body is read below
        try:
            response = session.send(request)
        finally:
            request.stream_output = streamed
        if streamed and response.status_code < 300:
            return response
        raw = response.raw
        data = bytearray()
        whole = False
        try:
            while len(data) <= cap:
                piece = raw.read(min(_PIECE, cap + 1 - len(data)))
                if not piece:
                    whole = True
                    break
                data += piece
        except URLLib3ReadTimeoutError as exc:  # as botocore's session would have raised them: retried
            raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
        except ProtocolError as exc:
            raise ConnectionClosedError(error=exc, request=request, endpoint_url=request.url) from exc
        except OSError as exc:
            raise HTTPClientError(error=exc) from exc
        finally:
            if whole:
                raw.release_conn()
            else:
                raw.close()  # not back to the pool: the rest is unread
        if not whole:
            operation = str(kwargs.get("event_name", "")).rpartition(".")[2] or request.method
            raise AnswerTooLarge(f"the store's answer to {operation} is more than {cap} bytes; refused")
        return AWSResponse(response.url, response.status_code, response.headers, _Read(bytes(data)))

    client.meta.events.register("before-send.s3", send)
