"""pywb, the reference open-source Wayback, replays what archiver wrote:
every version of a URL -- first capture, unchanged revisit, figure edit --
from the archive's own WARC files and from the WACZ export, byte for byte
what the loopback server sent (``id_`` mode: the original, unrewritten),
and each version's stylesheet (a page requisite: captured, then a revisit,
then changed with the edit) as it was at that snapshot.

pywb runs from its own cached virtualenv (tests/players.py), as a real
``wayback`` process on a free loopback port."""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import article_html, warc_files
from players import ensure_pywb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def pywb_bin() -> Path:
    return ensure_pywb()  # fails (never skips) when pywb cannot be installed


@dataclass
class Wayback:
    root: Path
    bin: Path
    port: int = 0
    proc: subprocess.Popen | None = None

    def manager(self, *args: str) -> str:
        p = subprocess.run([str(self.bin / "wb-manager"), *args], cwd=self.root, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout + p.stderr

    def start(self) -> None:
        for _ in range(5):
            self.port = _free_port()
            self.proc = subprocess.Popen(
                [str(self.bin / "wayback"), "-b", "127.0.0.1", "-p", str(self.port), "-t", "2"],
                cwd=self.root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
                except OSError:
                    time.sleep(0.2)
            self.stop()
        raise AssertionError("wayback did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def get(self, coll: str, timestamp: str, url: str) -> tuple[int, str, bytes]:
        req = f"http://127.0.0.1:{self.port}/{coll}/{timestamp}id_/{url}"
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _next_second() -> None:
    """pywb addresses captures to the second: keep versions in distinct seconds."""
    time.sleep(1.05 - (time.time() % 1))


def pywb_timestamp(captured_at: str) -> str:
    return captured_at.replace("-", "").replace(":", "").replace("T", "")[:14]


@pytest.fixture
def wayback(tmp_path, pywb_bin):
    wb = Wayback(tmp_path / "pywb", pywb_bin)
    wb.root.mkdir()
    yield wb
    wb.stop()


CSS_PATH = "/static/site.css"
CSS = ("body { font-family: Georgia, serif }\n", "body { font-family: Georgia, serif }\n",
       "body { font-family: Georgia, serif; color: #222 }\n")


@pytest.fixture
def three_versions(site, cli):
    """First capture, an unchanged re-capture (a revisit), a figure edit; what was sent each time.

    The page is styled: its stylesheet is a requisite, unchanged in the second
    version (stored as a revisit) and changed with the edit."""
    path = "/politik/truppen"
    first = article_html("Nordallianz verlegt 50.000 Soldaten", ["Es werden 50.000 Soldaten verlegt."])
    first = first.replace("</head>", f'<link rel="stylesheet" href="{CSS_PATH}"></head>')
    edited = first.replace("50.000", "60.000")
    url = site.page(path, first)
    sent = []
    for html, css in zip((first, first, edited), CSS):
        site.page(path, html)
        site.page(CSS_PATH, css, content_type="text/css")
        _next_second()
        r = cli("snapshot", url, "--json")
        assert r.code == 0, r.err
        sent.append((html.encode("utf-8"), css.encode("utf-8")))
    history = cli("history", url, "--json").json()
    assert [h["significance"] for h in history] == ["first", "none", "substantive"]
    assert cli("show", url, "--at", history[1]["id"], "--json").json()["revisit"] is True
    outcomes = [cli("show", url, "--at", h["id"], "--provenance").json()["manifest"]["requisites"]["items"][0]["outcome"]
                for h in history]
    assert outcomes == ["captured", "revisit", "captured"]
    return url, list(zip(history, sent))


def assert_replays(wb: Wayback, coll: str, url: str, versions: list) -> None:
    css_url = url.split("/politik/")[0] + CSS_PATH
    for snap, sent in versions:
        body, css = sent if isinstance(sent, tuple) else (sent, None)  # (page, stylesheet) or the page alone
        status, ctype, got = wb.get(coll, pywb_timestamp(snap["captured_at"]), url)
        assert status == 200, (snap, got[:200])
        assert ctype.startswith("text/html"), (snap["significance"], ctype)  # the page, never the manifest's JSON
        assert got == body, snap["significance"]
        if css is None:
            continue
        # The stylesheet as it was at this snapshot (the revisit's resolved to its original).
        status, ctype, got = wb.get(coll, pywb_timestamp(snap["captured_at"]), css_url)
        assert (status, got) == (200, css), (snap["significance"], ctype, got[:200])
        assert ctype.startswith("text/css")


def test_pywb_replays_every_version_from_the_warc_files(three_versions, wayback, cli):
    url, versions = three_versions
    wayback.manager("init", "archive")
    wayback.manager("add", "archive", *map(str, warc_files(cli.data_dir)))
    wayback.start()
    assert_replays(wayback, "archive", url, versions)


def test_pywb_replays_every_version_from_the_wacz_export(three_versions, wayback, cli, tmp_path):
    url, versions = three_versions
    wacz = tmp_path / "evidence.wacz"
    assert cli("export", url, "--wacz", str(wacz)).code == 0
    wayback.manager("init", "fromwacz")
    out = wayback.manager("add", "--unpack-wacz", "fromwacz", str(wacz))
    assert "does not contain any indices" not in out
    index = wayback.root / "collections" / "fromwacz" / "indexes" / "index.cdxj"
    assert index.exists() and len(index.read_text().splitlines()) >= 6  # pages and stylesheets
    wayback.start()
    assert_replays(wayback, "fromwacz", url, versions)


def test_an_archive_in_the_earlier_form_replays_through_its_wacz(site, cli, wayback, tmp_path, monkeypatch):
    """Archives written before the manifest had a URN of its own keep it
    under the page's URL, where pywb's own indexer finds it; the WACZ
    export indexes captures only, so exporting is the way to replay them."""
    import archiver.capture.records as records

    html = article_html("Alt", ["Es waren 12 Minister im Saal."])
    url = site.page("/alt", html)
    with monkeypatch.context() as m:
        m.setattr(records, "manifest_uri", lambda sid: url)
        assert cli("snapshot", url).code == 0
    (snap,) = cli("history", url, "--json").json()
    wacz = tmp_path / "old.wacz"
    assert cli("export", url, "--wacz", str(wacz)).code == 0
    wayback.manager("init", "old")
    wayback.manager("add", "--unpack-wacz", "old", str(wacz))
    wayback.start()
    assert_replays(wayback, "old", url, [(snap, html.encode("utf-8"))])
