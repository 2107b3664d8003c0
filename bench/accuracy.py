"""Accuracy of edit detection over the labelled corpus (tests/corpus).

Prints per-kind results, substantive precision/recall, false alarms on
noise-only pairs and figure-change recall. Run: python bench/accuracy.py
"""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from archiver.changes.diff import diff_articles  # noqa: E402
from archiver.changes.extract import extract_article  # noqa: E402


def main() -> int:
    cases = sorted(p for p in (ROOT / "tests" / "corpus").iterdir() if (p / "expected.json").exists())
    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    tp = fp = fn = 0
    noise_total = noise_alarms = 0
    fig_expected = fig_found = fig_spurious = 0
    wrong: list[str] = []
    t0 = time.perf_counter()
    for case in cases:
        exp = json.loads((case / "expected.json").read_text(encoding="utf-8"))
        before = extract_article((case / "before.html").read_bytes())
        after = extract_article((case / "after.html").read_bytes())
        res = diff_articles(before, after)
        got_figs = [(f.to_json()["before_value"], f.to_json()["after_value"]) for f in res.figures]
        want_figs = [(f["before_value"], f["after_value"]) for f in exp["figures"]]
        remaining = list(got_figs)
        for w in want_figs:
            if w in remaining:
                remaining.remove(w)
                fig_found += 1
        fig_expected += len(want_figs)
        fig_spurious += len(remaining)
        ok = res.significance == exp["significance"] and sorted(got_figs, key=repr) == sorted(want_figs, key=repr)
        per_kind[exp["kind"]][0] += ok
        per_kind[exp["kind"]][1] += 1
        if not ok:
            wrong.append(f"  {case.name}: expected {exp['significance']} {want_figs}, got {res.significance} {got_figs}")
        is_sub, want_sub = res.significance == "substantive", exp["significance"] == "substantive"
        tp += is_sub and want_sub
        fp += is_sub and not want_sub
        fn += want_sub and not is_sub
        if exp["kind"] == "noise":
            noise_total += 1
            noise_alarms += res.significance != "none"
    elapsed = time.perf_counter() - t0
    print(f"corpus: {len(cases)} version pairs ({elapsed * 1000:.0f} ms incl. extraction)\n")
    print(f"{'kind':<20}{'right':>7}{'total':>7}")
    for kind, (right, total) in sorted(per_kind.items()):
        print(f"{kind:<20}{right:>7}{total:>7}")
    right = sum(r for r, _ in per_kind.values())
    print(f"{'all':<20}{right:>7}{len(cases):>7}\n")
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    print(f"substantive precision: {precision:.3f} ({tp}/{tp + fp})")
    print(f"substantive recall:    {recall:.3f} ({tp}/{tp + fn})")
    print(f"false alarms on noise-only pairs: {noise_alarms}/{noise_total}")
    fig_recall = fig_found / fig_expected if fig_expected else 1.0
    print(f"figure-change recall:  {fig_recall:.3f} ({fig_found}/{fig_expected}); spurious figure changes: {fig_spurious}")
    if wrong:
        print("\nwrong cases:")
        print("\n".join(wrong))
    return 0 if not wrong else 1


if __name__ == "__main__":
    raise SystemExit(main())
