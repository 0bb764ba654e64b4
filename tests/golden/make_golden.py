"""Regenerate tests/golden/<case>/ by running the old script on each corpus.

Needs the old script at ../shared/seed/refresh_codex_history.py (beside the repository);
run from the repository root: `python -m tests.golden.make_golden`. A file the old script did
not write is recorded as absent (`<name>.absent`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.golden.corpora import CASES, GOLDEN, OUTPUTS, SEED, build_case


def run_seed(home: Path, extra: list[str]) -> None:
    subprocess.run(
        [sys.executable, str(SEED), "--codex-home", str(home), "--no-backup", *extra],
        capture_output=True,
        text=True,
        check=True,
    )


def main() -> int:
    if not SEED.exists():
        print(f"the old script is not at {SEED}; nothing regenerated", file=sys.stderr)
        return 1
    for case, extra in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            home = build_case(case, Path(tmp) / "home")
            run_seed(home, extra)
            target = GOLDEN / case
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            for name in OUTPUTS:
                if (home / name).exists():
                    shutil.copyfile(home / name, target / name)
                else:
                    (target / f"{name}.absent").write_text("")
        print(f"{case}: written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
