"""What the dashboard's AppTest modules share: the app's path, the small store's dataset and a page opener."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"
DATASET = "samples"


def open_app(page: str | None = None, *, query: dict | None = None) -> AppTest:
    """The app run once (with `query` as its URL parameters), then switched to `page`; no exception allowed."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    if query:
        at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at
