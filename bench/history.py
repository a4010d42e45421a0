"""The figures of earlier benchmark runs side by side, so a regression shows as a changed number.

    uv run python -m bench.history [BENCH ...] [--last 5] [--threshold 10]

Reads bench/results/BENCH-<UTC stamp>.json (one file per run, written by every bench command)
and prints, for each benchmark, its numeric figures over its last runs, oldest first. The last
column compares the newest run with the one before it; a change larger than the threshold (in
percent) is marked `<<`. Nested figures are shown by their path (`by_request./v1/me.p99_ms`);
machine facts (CPU count, load average, versions) are shown too, since they explain changes.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR

SKIP = {"bench", "utc"}
SKIP_PREFIXES = ("profile",)  # profiles are shares of samples, not figures to compare


def runs(directory: Path = RESULTS_DIR) -> dict[str, list[dict[str, Any]]]:
    """Every run's figures by benchmark name, oldest first."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(directory.glob("*-*.json")):
        try:
            figures = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(figures, dict) and "bench" in figures:
            found[str(figures["bench"])].append(figures)
    for history in found.values():
        history.sort(key=lambda f: str(f.get("utc", "")))
    return found


def numbers(figures: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric figures of one run, nested ones by their dotted path."""
    flat: dict[str, float] = {}
    for key, value in figures.items():
        if not prefix and (key in SKIP or key.startswith(SKIP_PREFIXES)):
            continue
        path = f"{prefix}{key}"
        if isinstance(value, int | float):  # booleans too, as 1 and 0
            flat[path] = float(value)
        elif isinstance(value, dict):
            flat.update(numbers(value, f"{path}."))
    return flat


def change(old: float | None, new: float | None) -> float | None:
    """The change from `old` to `new` in percent (None when it cannot be said)."""
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old) * 100


def table(name: str, history: list[dict[str, Any]], threshold: float) -> list[str]:
    shown = [numbers(f) for f in history]
    keys = sorted({k for f in shown for k in f})
    width = max([len(k) for k in keys] + [10])
    lines = [f"== {name} ({len(history)} run(s) shown)",
             f"{'figure':<{width}} " + " ".join(f"{f['utc'][:15]:>16}" for f in history)
             + f" {'change':>9}"]
    for key in keys:
        values = [f.get(key) for f in shown]
        moved = change(values[-2], values[-1]) if len(values) > 1 else None
        mark = "" if moved is None else f"{moved:+8.1f}%" + (" <<" if abs(moved) > threshold
                                                              else "")
        lines.append(f"{key:<{width}} " + " ".join(
            f"{'-' if v is None else f'{v:,.6g}':>16}" for v in values) + f" {mark}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benches", nargs="*", help="benchmark names (default: all)")
    parser.add_argument("--last", type=int, default=5, help="runs to show per benchmark")
    parser.add_argument("--threshold", type=float, default=10.0,
                        help="mark changes larger than this many percent")
    args = parser.parse_args()
    found = runs()
    names = args.benches or sorted(found)
    if not found:
        print(f"no results in {RESULTS_DIR} yet: run a benchmark first")
    for name in names:
        if name not in found:
            print(f"== {name}: no runs recorded")
            continue
        print("\n".join(table(name, found[name][-args.last:], args.threshold)))
        print()


if __name__ == "__main__":
    main()
