"""Edit detection on real news pages: false alarms, substantive recall, figure recall.

The pages are real article pages of 18 publishers kept outside the project
(`../shared/realworld/pages`, see its README: test material, not shipped).
For each page, bench/realedits.py makes every change kind by program (noise,
inline teasers and recommendation boxes, a redesign, cosmetic edits, figure
and other substantive edits); both versions are served from a loopback server
and captured through the real path (`Archive.snapshot`: HTTP, WARC, extract,
diff, signing, index), and the stored significance and `diff` are scored.

    python bench/realworld.py [--pages DIR] [--in-process] [--processes N] [--show-wrong] [--dump FILE]

`--in-process` skips capture (extract + diff only) for quick iteration.
`--processes N` reads the captured pages in N worker processes, as parallel
captures (`snapshot -i --workers`, the daemon) do. `--dump FILE` writes one JSON line per case (significance, figures, changes
digest, each side's method and text digest) and per page the requisites it
names, so two runs (before and after a change to extraction or parsing) can
be compared with `diff`: what is flagged must not move.
Exit status 1 when any case is wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import threading
import time
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import loopback  # noqa: E402
from archiver.archive import Archive  # noqa: E402
from archiver.capture.requisites import page_references  # noqa: E402
from archiver.changes.diff import diff_articles  # noqa: E402
from archiver.changes.extract import extract_article  # noqa: E402
from archiver.config import Settings  # noqa: E402
from realedits import NOISE, REDESIGN, SUBSTANTIVE, TEASER, Change, changes  # noqa: E402


def default_pages() -> Path:
    """``../shared/realworld/pages`` from the repository (or from any parent, for worktrees)."""
    for base in [ROOT, *ROOT.parents]:
        cand = base.parent / "shared" / "realworld" / "pages"
        if cand.is_dir():
            return cand
    return ROOT.parent / "shared" / "realworld" / "pages"


class Pages:
    """A loopback server (bench/loopback.py) for path -> bytes, switched between versions by the bench."""

    def __init__(self) -> None:
        self.routes: dict[str, bytes] = {}
        self.server = loopback.server(lambda path: (self.routes.get(path, b""), "text/html; charset=utf-8"))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def judge_captured(archive: Archive, pages: Pages, path: str, ch: Change) -> dict[str, Any]:
    pages.routes[path] = ch.before.encode("utf-8")
    archive.snapshot(pages.url(path))
    pages.routes[path] = ch.after.encode("utf-8")
    row = archive.snapshot(pages.url(path)).row
    diff = archive.diff(pages.url(path), None, None)
    assert diff["significance"] == row.significance, (diff["significance"], row.significance)
    return diff


def judge_in_process(ch: Change) -> dict[str, Any]:
    a = extract_article(ch.before.encode("utf-8"), content_type="text/html; charset=utf-8")
    b = extract_article(ch.after.encode("utf-8"), content_type="text/html; charset=utf-8", method=a.method)
    return diff_articles(a, b).to_json()


def paragraphs_read(body: bytes, paras: list[Any]) -> int:
    """How many of the page's article paragraphs (found without the product) are in its extracted text."""
    text = " ".join(" ".join(extract_article(body, content_type="text/html; charset=utf-8").blocks).split())
    return sum(p.text in text for p in paras)


def _figures(diff: dict[str, Any]) -> set[tuple[Decimal, Decimal]]:
    out = set()
    for f in diff["figures"]:
        if f["before_value"] is not None and f["after_value"] is not None:
            out.add((Decimal(str(f["before_value"])), Decimal(str(f["after_value"]))))
    return out


def _case_record(name: str, i: int, ch: Change, diff: dict[str, Any]) -> dict[str, Any]:
    """One case's outcome for --dump: what is flagged, and what each side's extraction read."""
    sides = {}
    for side, html in (("before", ch.before), ("after", ch.after)):
        art = extract_article(html.encode("utf-8"), content_type="text/html; charset=utf-8")
        sides[side] = {"method": art.method, "language": art.language, "notes": list(art.notes),
                       "text_sha256": hashlib.sha256(art.text().encode("utf-8")).hexdigest()}
    changes = json.dumps(diff["changes"], sort_keys=True, ensure_ascii=False).encode("utf-8")
    return {"page": name, "case": i, "kind": ch.kind, "significance": diff["significance"],
            "figures": [[f["before"], f["after"], f["before_value"], f["after_value"]] for f in diff["figures"]],
            "changes_sha256": hashlib.sha256(changes).hexdigest(), **sides}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pages", type=Path, default=default_pages())
    ap.add_argument("--in-process", action="store_true", help="extract + diff only, no capture")
    ap.add_argument("--show-wrong", action="store_true", help="print the changes of every wrong case")
    ap.add_argument("--processes", type=int, default=0,
                    help="read pages in this many worker processes (archiver/pages.py), as parallel captures do")
    ap.add_argument("--dump", type=Path, help="write every case's outcome here (JSON lines) to compare runs")
    args = ap.parse_args(argv)
    files = sorted(args.pages.glob("*.html"))
    if not files:
        print(f"no pages in {args.pages} (see --pages)", file=sys.stderr)
        return 2
    meta_file = args.pages.parent / "pages.json"
    meta = {m["name"]: m for m in json.loads(meta_file.read_text(encoding="utf-8"))} if meta_file.exists() else {}

    tmp = tempfile.TemporaryDirectory(prefix="realworld-")
    settings = Settings()
    settings.archive.data_dir = tmp.name
    settings.capture.allow_private = True
    # The saved pages name their publishers' stylesheets and images by absolute
    # URL: requisites would reach the internet, and they never change the text.
    settings.capture.requisites = False
    settings.diff.extract_processes = args.processes
    archive = None if args.in_process else Archive(settings)
    if archive is not None and args.processes:
        archive.read_pages_in_parallel(2)
    server = None if args.in_process else Pages()

    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_pub: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    wrong: list[str] = []
    t0 = time.perf_counter()
    cases = 0
    dump = args.dump.open("w", encoding="utf-8") if args.dump else None
    for f in files:
        m = meta.get(f.name, {})
        lang = m.get("lang") or f.name[:2]
        pub = m.get("publisher") or f.name
        page = f.read_bytes().decode("utf-8", errors="replace")
        paras, chs = changes(lang, page)
        for i, ch in enumerate(chs):
            cases += 1
            if archive is not None and server is not None:
                diff = judge_captured(archive, server, f"/{f.stem}/{i}", ch)
            else:
                diff = judge_in_process(ch)
            got = diff["significance"]
            ok = got == ch.expect
            if dump is not None:
                dump.write(json.dumps(_case_record(f.name, i, ch, diff), sort_keys=True) + "\n")
            figs_ok = all(fig in _figures(diff) for fig in ch.figures)
            pp = per_pub[f.name]
            if ch.group in (NOISE, TEASER, REDESIGN) or ch.expect == "cosmetic":
                pp["alarms"][0] += got == "substantive"
                pp["alarms"][1] += 1
            if ch.group == SUBSTANTIVE:
                pp["recall"][0] += got == "substantive"
                pp["recall"][1] += 1
            if ch.figures:
                pp["figures"][0] += figs_ok
                pp["figures"][1] += 1
                ok = ok and figs_ok
            pp["right"][0] += ok
            pp["right"][1] += 1
            per_kind[f"{ch.group}: {ch.kind}"][0] += ok
            per_kind[f"{ch.group}: {ch.kind}"][1] += 1
            if not ok:
                wrong.append(f"  {f.name} {pub} / {ch.kind}: expected {ch.expect} {[(str(a), str(b)) for a, b in ch.figures]}, "
                             f"got {got} {[(f['before_value'], f['after_value']) for f in diff['figures']]}")
                if args.show_wrong:
                    wrong.extend(f"      {c['op']}: {str(c.get('before'))[:150]!r} -> {str(c.get('after'))[:150]!r}"
                                 for c in diff["changes"][:6])
        per_pub[f.name]["paragraphs"] = [paragraphs_read(f.read_bytes(), paras), len(paras)]
        if dump is not None:
            dump.write(json.dumps({"page": f.name, "requisites": page_references(f.read_bytes(), "https://example.org/a/b",
                                                                                 "utf-8")}) + "\n")
    if dump is not None:
        dump.close()
    elapsed = time.perf_counter() - t0
    mode = "in-process extract+diff" if args.in_process else "captured through Archive.snapshot on loopback"
    print(f"real pages: {len(files)} from {args.pages}, {cases} version pairs, {mode}, {elapsed:.1f} s\n")
    print(f"{'kind':<44}{'right':>7}{'total':>7}")
    for kind, (r, t) in sorted(per_kind.items()):
        print(f"{kind:<44}{r:>7}{t:>7}")
    print(f"\n{'page':<12}{'publisher':<34}{'false alarms':>14}{'subst. found':>14}{'figures':>10}{'right':>9}"
          f"{'paragraphs':>12}")
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name in sorted(per_pub):
        pp = per_pub[name]
        for k in ("alarms", "recall", "figures", "right", "paragraphs"):
            totals[k][0] += pp[k][0]
            totals[k][1] += pp[k][1]
        pub = (meta.get(name, {}).get("publisher") or "")[:32]
        print(f"{name:<12}{pub:<34}{'%d/%d' % tuple(pp['alarms']):>14}{'%d/%d' % tuple(pp['recall']):>14}"
              f"{'%d/%d' % tuple(pp['figures']):>10}{'%d/%d' % tuple(pp['right']):>9}{'%d/%d' % tuple(pp['paragraphs']):>12}")
    print(f"{'all':<46}{'%d/%d' % tuple(totals['alarms']):>14}{'%d/%d' % tuple(totals['recall']):>14}"
          f"{'%d/%d' % tuple(totals['figures']):>10}{'%d/%d' % tuple(totals['right']):>9}"
          f"{'%d/%d' % tuple(totals['paragraphs']):>12}")
    print("\nfalse alarms = `substantive` on a noise, teaser, redesign or cosmetic change; subst. found = "
          "substantive edits reported as such; figures = figure edits reported with both values;\n"
          "paragraphs = the page's article paragraphs (found without the product) present in its extracted text")
    if wrong:
        print("\nwrong cases:")
        print("\n".join(wrong))
    if archive is not None:
        archive.close()
    if server is not None:
        server.close()
    tmp.cleanup()
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
