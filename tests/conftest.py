"""How ``make test`` shares two processes (pytest-xdist, ``--dist loadgroup``).

The tests that start a broker and worker processes (``tests/integration``, ``tests/faults``) form one
group and run one after another in one process: they already keep two cores busy (broker, workers,
producer), and they share a session broker. Every other test module is a group of its own — a module's
expensive fixtures (a simulated log, a trained model) are then built once — and runs in the other
process meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
BROKER_SUITES = ("integration", "faults")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(TESTS)
        group = "broker" if rel.parts[0] in BROKER_SUITES else rel.as_posix()
        item.add_marker(pytest.mark.xdist_group(group))
