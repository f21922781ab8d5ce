"""Shared by the benchmarks: write one delimited section of docs/PERFORMANCE.md."""

from __future__ import annotations

from pathlib import Path

PERFORMANCE_MD = Path(__file__).resolve().parent.parent / "docs" / "PERFORMANCE.md"
HEADER = "# Performance\n\nFigures written by the scripts in `benchmarks/`.\n"


def update_section(name: str, body: str, path: Path = PERFORMANCE_MD) -> None:
    """Replace `<!-- bench:NAME -->` ... `<!-- /bench:NAME -->` in `path` (appended, file created, when missing)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = path.read_text() if path.is_file() else HEADER
    block = f"{start}\n{body.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
