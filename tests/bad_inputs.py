"""Bad-input cases as test parameters: each test that feeds the tool a bad input takes a `BadInput`, so
`scripts/reliability_table.py` can list every case the suite tries in docs/RELIABILITY.md (it cannot drift:
the table is read from the collected tests' parameters, and tests/test_reliability_doc.py compares it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

STORE_STATES = ("unchanged", "byte-identical", "results unchanged, run logged as failed", "no store created",
                "not involved")


@dataclass(frozen=True)
class BadInput:
    """One bad input: what the user gave, what is wrong with it, the message it gets, what happens to the store.

    `message` is a fragment the test asserts the one-line message contains; `store` is one of STORE_STATES and
    the test checks it: "unchanged" = table checksums equal before/after; "byte-identical" = the file's bytes (a
    damaged store has no readable tables); "results unchanged, run logged as failed" = every table but the run log
    (`runs`, `prediction_staging`) unchanged; "no store created" = no file left behind.
    """

    id: str
    kind: str
    wrong: str
    message: str
    store: str = "unchanged"

    def __post_init__(self) -> None:
        if self.store not in STORE_STATES:
            raise ValueError(f"store={self.store!r} must be one of {STORE_STATES}")


def cases(*items: BadInput) -> list:
    """`pytest.param`s for `@pytest.mark.parametrize("case", cases(...))`, one id per case."""
    ids = [c.id for c in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate BadInput ids: {sorted(i for i in ids if ids.count(i) > 1)}")
    return [pytest.param(c, id=c.id) for c in items]
