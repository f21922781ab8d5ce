"""Knowledge lookups, `info` and the dashboard's first pages never import torch (DESIGN: seconds and ~1 GB saved)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "timm", "open_clip")

_INFO = """
import contextlib, importlib, io, json, pkgutil, sys
import analysis.knowledge
from analysis import cli
from analysis.knowledge import classes
for module in pkgutil.iter_modules(analysis.knowledge.__path__):
    importlib.import_module(f"analysis.knowledge.{module.name}")
with contextlib.redirect_stdout(io.StringIO()):
    code = cli.main(["info"])
classes.classes(); classes.real_labels(); classes.sample_images()
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
"""

_APP = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(APP, default_timeout=120)
at.run()
errors = [e.value for e in at.exception]
at.switch_page("app_pages/browse.py").run()
errors += [e.value for e in at.exception]
print(json.dumps({"errors": [str(e) for e in errors], "heavy": [m for m in HEAVY if m in sys.modules]}))
"""


def _run(code: str, env: dict | None = None) -> dict:
    prelude = f"HEAVY = {HEAVY!r}\nAPP = {str(ROOT / 'dashboard' / 'app.py')!r}\n"
    done = subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_knowledge_modules_info_and_class_metadata_do_not_import_torch():
    result = _run(_INFO)
    assert result["code"] == 0
    assert result["heavy"] == [], f"imported {result['heavy']}"


def test_dashboard_overview_and_browse_do_not_import_torch(small_store):
    result = _run(_APP, {"IMAGENET_ERRORS_DB": str(small_store)})
    assert result["errors"] == []
    assert result["heavy"] == [], f"imported {result['heavy']}"
