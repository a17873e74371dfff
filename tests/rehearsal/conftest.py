"""The rehearsal's fixtures: one set of VMs for the whole module, and when it runs at all.

The rehearsal boots three Debian VMs under QEMU (Debian 13 and 12; up to about fifteen minutes
on a 2-core machine from a cold cache), so it runs when asked for: ``pytest -m rehearsal``, or ``KC_REHEARSAL=1``, which .ci/run sets as root
after installing QEMU and debootstrap (so CI always runs it). Elsewhere its tests are skipped with
the reason, and a machine that lacks what it needs (root, QEMU, debootstrap ...) skips them naming
what is missing, except with ``KC_REHEARSAL=1``, where that is a failure: CI must run it.
(``CI=true`` alone does not ask for it: hosted runners set it without being root.)
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from tools.rehearsal.session import Rehearsal, missing_requirements

#: The session's rehearsal (for the timings in the terminal summary).
CURRENT: dict[str, Rehearsal] = {}
SKIPPED: list[str] = []


def _asked_for(config: pytest.Config) -> bool:
    expression = str(config.getoption("markexpr") or "").strip()
    return os.environ.get("KC_REHEARSAL") == "1" or expression == "rehearsal"


@pytest.fixture(scope="package")
def rehearsal(request: pytest.FixtureRequest) -> Iterator[Rehearsal]:
    """Three booted VMs, the mirror serving, the image and mirror built or reused.

    Package scope: the VMs stop after the last rehearsal test, not at the end of the whole run
    (three idle VMs would otherwise take CPU from the rest of the suite, and the wall time would
    count it)."""
    if not _asked_for(request.config):
        reason = ("the rehearsal boots 3 QEMU VMs (10-15 min): run it with `pytest -m rehearsal` "
                  "(or KC_REHEARSAL=1); .ci/run as root always runs it")
        SKIPPED.append(reason)
        pytest.skip(reason)
    missing = missing_requirements()
    if missing:
        reason = "the rehearsal needs " + ", ".join(missing)
        if os.environ.get("KC_REHEARSAL") == "1":
            pytest.fail(f"{reason}: KC_REHEARSAL=1 (CI) must run the rehearsal (.ci/run installs these as root)",
                        pytrace=False)
        SKIPPED.append(reason)
        pytest.skip(reason)
    session = Rehearsal(count=3, keep=os.environ.get("KC_REHEARSAL_KEEP") == "1")
    CURRENT["session"] = session
    started = time.monotonic()
    try:
        with session:
            yield session
    finally:
        # Everything, from the image builds to the VMs' shutdown, checks included.
        session.timings["wall time (set-up to shutdown)"] = round(time.monotonic() - started, 1)
        session.write_timings()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_etcd_on_vms.py right after test_rehearsal.py (by name it would come first, on fresh
    VMs): it backs up the cluster that module's scenarios built and upgraded, and its restore
    replaces that cluster."""
    etcd = [item for item in items if item.path.name == "test_etcd_on_vms.py"]
    rest = [item for item in items if item.path.name != "test_etcd_on_vms.py"]
    scenarios = [n for n, item in enumerate(rest) if item.path.name == "test_rehearsal.py"]
    if etcd and scenarios:
        items[:] = rest[: scenarios[-1] + 1] + etcd + rest[scenarios[-1] + 1:]


#: Each VM scenario's own time (its call, checks included; the VMs' boot is the first one's
#: set-up), in the order they ran: where the wall time goes beyond the stages.
SCENARIO_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and CURRENT.get("session") is not None and "test_parts.py" not in report.nodeid:
        SCENARIO_SECONDS[report.nodeid.rpartition("::")[2]] = report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    session = CURRENT.get("session")
    if session is not None and session.timings:
        terminalreporter.section("rehearsal timings")
        for stage, seconds in session.timings.items():
            terminalreporter.write_line(f"{stage:40} {seconds:7.1f} s")
        total = sum(seconds for stage, seconds in session.timings.items()
                    if not stage.startswith((" ", "wall time")))
        terminalreporter.write_line(f"{'total of the stages':40} {total:7.1f} s")
        terminalreporter.write_line("each scenario, its checks included:")
        for name, seconds in SCENARIO_SECONDS.items():
            terminalreporter.write_line(f"  {name[:78]:78} {seconds:7.1f} s")
    elif SKIPPED:
        terminalreporter.write_line(f"rehearsal skipped: {SKIPPED[0]}")
