"""Damaged-session fuzzing at scale: the mutator of tests/test_session_fuzz.py with a larger count.

Builds one tiny valid session per experiment kind (the runs of tests/test_contract.py), writes ``--count``
mutants of each (the mutation types in turn, on ``--seed``), runs each through load_session, read_header and
`wna info` in memory-capped worker processes, exports ``--exports`` of each kind's that load, and prints a
table of outcomes per kind and mutation type (refused / loaded / exported / FAILED) and every failure.

    python benchmarks/fuzz_sessions.py [--count 1000] [--seed 0] [--exports 20] [--workers 2]
                                      [--kinds sta,robustness] [--pristine DIR]

``--pristine DIR`` keeps the intact sessions in DIR and reuses them on the next call (building them takes minutes).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import test_session_fuzz as fuzz  # noqa: E402  (the tests folder is on the path now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="mutants per experiment kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--exports", type=int, default=20, help="mutants per kind also exported (when they load)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kinds", help="only these experiment kinds (comma-separated)")
    parser.add_argument("--pristine", help="folder to keep (and reuse) the intact sessions in")
    args = parser.parse_args()
    kinds = tuple(args.kinds.split(",")) if args.kinds else None
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = Path(args.pristine or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        paths = fuzz.pristine_sessions(folder, kinds)
        references = fuzz.reference_nans(paths, Path(tmp))
        built = time.perf_counter() - start
        start = time.perf_counter()
        results = fuzz.run_fuzz(paths, args.count, args.seed, args.exports, args.workers, references)
        seconds = time.perf_counter() - start
    print(fuzz.outcome_table(results))
    failures = [f"{r['kind']} {r['mutation']} seed {r['seed']}: {f}" for r in results for f in r["failures"]]
    print(f"\n{len(results)} mutants ({len(paths)} kinds × {args.count}) in {seconds:.0f} s with {args.workers} "
          f"workers ({seconds / len(results) * 1000:.0f} ms each; sessions built in {built:.0f} s); "
          f"{len(failures)} failures")
    for failure in failures:
        print(failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
