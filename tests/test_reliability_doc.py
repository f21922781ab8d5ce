"""docs/RELIABILITY.md is generated from the suite's BadInput parameters: it must match them and list >= 40 cases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reliability_doc_matches_the_suite():
    # a subprocess: collecting the suite inside a running pytest session would re-enter it
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "reliability_table.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    text = (ROOT / "docs" / "RELIABILITY.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("` |")]
    assert len(rows) >= 40, f"docs/RELIABILITY.md lists {len(rows)} bad inputs; the project promises at least 40"
