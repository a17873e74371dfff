"""components/systemd_calendar.py against the real ``systemd-analyze calendar``.

The verdicts below were recorded with ``systemd-analyze calendar EXPR`` (exit status 0 = accepted)
of systemd 252 (252.38-1~deb12u1, Debian 12, the control planes' release), in a UTC machine zone,
with the tz database of Debian's tzdata. The grammar is systemd.time(7) "CALENDAR EVENTS" and
src/shared/calendarspec.c (systemd v252); the module re-implements it, nothing is copied.

* every recorded verdict is the module's verdict (time zones answered from the recorded list);
* when ``systemd-analyze`` is installed, the verdicts, a seeded batch of generated expressions and
  the shortest intervals between firings are re-derived live, so a newer systemd that parses
  differently fails here, not on a node;
* the ``backup.schedule`` rule: what systemd refuses, one-off and never-firing schedules, and
  schedules that fire less than 5 minutes apart are refused before any resource, naming the field.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
from datetime import datetime

import pytest

from components import config, systemd_calendar
from components.systemd_calendar import CalendarError, parse, repeating_schedule_problem
from tests.conftest import stack_config
from tools.mock_engine import run_program

#: The time zones the recording machine's tz database has, of those the corpus names (systemd opens
#: /usr/share/zoneinfo/NAME; names are case-sensitive there). CEST, PST, Mars/Olympus and
#: europe/berlin are not among them.
RECORDED_ZONES = frozenset({"Europe/Berlin", "Etc/UTC", "GMT", "CET", "America/New_York", "Etc/GMT+5"})

#: (expression, accepted by systemd-analyze calendar 252). Leading/trailing spaces are significant
#: here: systemd-analyze refuses them (config strips them, as a unit file would).
VERDICTS: list[tuple[str, bool]] = [
    ('minutely', True),
    ('hourly', True),
    ('daily', True),
    ('weekly', True),
    ('monthly', True),
    ('yearly', True),
    ('annually', True),
    ('anually', True),
    ('quarterly', True),
    ('semiannually', True),
    ('semi-annually', True),
    ('biannually', True),
    ('bi-annually', True),
    ('HOURLY', True),
    ('Daily', True),
    ('fortnightly', False),
    ('hourly UTC', True),
    ('daily Europe/Berlin', True),
    ('hourly, daily', False),
    ('hourly,daily', False),
    ('every hour', False),
    (' daily ', False),
    ('daily ', False),
    (' daily', False),
    ('', False),
    ('@1700000000', True),
    ('@0', True),
    ('@-0', True),
    ('@-5', False),
    ('@ 5', True),
    ('@+5', True),
    ('@', False),
    ('@x', False),
    ('@7258118399', True),
    ('@7258118400', False),
    ('@1700000000 UTC', True),
    ('Mon @1700000000', True),
    ('@1700000000 12:00', False),
    ('@1700000000.5', False),
    ('Sat,Sun *-*-* 10:00', True),
    ('*-*~03', True),
    ('Mon *-05~07/1', True),
    ('12:00 Europe/Berlin', True),
    ('2026-13-01', False),
    ('25:00', False),
    ('Mon..Frii 25:00', False),
    ('Mon..Frii', False),
    ('*:0/0', False),
    ('*-*-* *:*:*', True),
    ('*:*', True),
    ('*:0/2', True),
    ('*:0/15', True),
    ('*-*-* 00/6:00:00', True),
    ('Mon..Fri 02:30', True),
    ('Mon', True),
    ('Mon ', True),
    ('MONDAY', True),
    ('Mond', False),
    ('Mon,', True),
    ('Mon, 12:00', True),
    ('Mon,12:00', False),
    ('Mon..', False),
    ('Mon..,Tue', False),
    ('mon-fri', True),
    ('Mon.Fri', False),
    ('Mon - Fri', False),
    ('Wed..Mon', False),
    ('Mon..Sun', True),
    ('Mon..Wed..Fri', False),
    ('Monday-Wednesday,Fri 04:00', True),
    ('Mon Tue', False),
    ('Mon  12:00', True),
    ('*-*-*', True),
    ('*-*-* ', True),
    ('*-*', True),
    ('*', False),
    ('12', False),
    ('12:', False),
    ('12:00:', False),
    ('12:00:00:00', False),
    ('12:00:00.', False),
    ('12:00:00.5', True),
    ('12:00:00..5', True),
    ('12:00:1..1', False),
    ('*:1..1', True),
    ('5..5:00', True),
    ('1..3/4:00', True),
    ('*/2:00', False),
    ('*:30/30', False),
    ('*:30/29', True),
    ('*:*:59.999999', True),
    ('*:*:59.9999995', False),
    ('*:*:1.9999995', True),
    ('*:*:0/0.0000001', False),
    ('*:*:0/0.0000005', True),
    ('1,,2:00', False),
    ('1,:00', False),
    (',1:00', False),
    ('*,1:00', False),
    ('0/24:00', False),
    ('0/23:00', True),
    ('23..1:00', False),
    ('*:*:0/60', False),
    ('*-*-* 24:00', False),
    ('2026-02-29', True),
    ('*-02-29', True),
    ('*-02-30', True),
    ('*-04-31', True),
    ('2199-12-31 23:59:59', True),
    ('2200-01-01', False),
    ('1969-12-31', False),
    ('70-01-01', True),
    ('69-12-31', True),
    ('100-01-01', False),
    ('1999..2001-01-01', True),
    ('2026-*-* 02:00', True),
    ('*-*-31/2', False),
    ('*-*-29/2', True),
    ('*~28', True),
    ('*~29', False),
    ('*~28/1', True),
    ('*~1..28', True),
    ('*-*~01/1', False),
    ('*-*~07/1', True),
    ('*~*', True),
    ('*~2,25', True),
    ('*~2,28', False),
    ('*~28,2..23/60,10', False),
    ('*-*-*T12:00', False),
    ('12:00 utc', True),
    ('12:00 UTC', True),
    ('12:00  UTC', False),
    ('UTC', False),
    ('12:00 Etc/UTC', True),
    ('12:00 GMT', True),
    ('12:00 CET', True),
    ('12:00 CEST', False),
    ('12:00 PST', False),
    ('12:00 Mars/Olympus', False),
    ('12:00 europe/berlin', False),
    ('12:00 America/New_York', True),
    ('12:00 Etc/GMT+5', True),
    ('12:00 UTC UTC', False),
    ('0,23:0,58', True),
    ('*:01,58', True),
    ('*:00:00,30', True),
    ('Sun,Mon 0,23:0,58', True),
    ('Mon,Wed 0,23:0,58', True),
    ('*-01,12-01,31 0,23:0,58', True),
    # CALENDARSPEC_COMPONENTS_MAX (240, counted from 0): 241 comma-separated values at most.
    (",".join(["1"] * 241) + ":00", True),
    (",".join(["1"] * 242) + ":00", False),
]

#: backup.schedule: (value, None when accepted, else a part of the message). The 5-minute rule,
#: one-off and never-firing schedules are this project's; the rest is systemd's refusal.
BACKUP_RULE: list[tuple[str, str | None]] = [
    *[(shorthand, None) for shorthand in config.BACKUP_SCHEDULE_SHORTHANDS],
    ("*:0/15", None),
    ("*:0/5", None),  # exactly 5 minutes apart is enough
    ("*-*-* 00/6:00:00", None),
    ("Mon..Fri 02:30", None),
    ("Sat,Sun *-*-* 10:00", None),
    ("Mon *-05~07/1 03:00", None),
    ("*-*~03", None),
    ("12:00 Europe/Berlin", None),
    ("02:30 UTC", None),
    ("Mon,Wed 0,23:0,58", None),  # 23:58 and 00:00 are neighbours only on days in a row
    ("minutely", "fires every minute"),
    ("*:*", "fires every minute"),
    ("*-*-* *:*:*", "fires every second"),
    ("*:0/2", "fires every 2 minutes"),
    ("*:0/4", "fires every 4 minutes"),
    ("*:01,58", "fires every 3 minutes"),
    ("*:00:00,30", "fires every 30 seconds"),
    ("0,23:0,58", "fires every 2 minutes"),  # 23:58, then 00:00 the next day
    ("Sun,Mon 0,23:0,58", "fires every 2 minutes"),
    ("*:*:0/0.0000005", "several times a second"),
    ("@1700000000", "one moment"),
    ("2026-*-* 02:00", "names a year (2026)"),
    ("*-02-30", "never fire"),
    ("Mon..Frii 25:00", "'Frii' is not a weekday"),
    ("25:00", "hour 25: out of range 0-23"),
    ("2026-13-01", "month 13: out of range 1-12"),
    ("hourly, daily", "one value is one expression"),
    ("every hour", "not a systemd calendar expression"),
    ("*:0/0", "must not be 0"),
]


def _systemd_accepts(expression: str) -> bool:
    check = subprocess.run(["systemd-analyze", "calendar", expression], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, env={**os.environ, "TZ": "UTC"}, check=False)
    return check.returncode == 0


def _ours(expression: str) -> tuple[bool, str]:
    try:
        parse(expression, zone_known=lambda name: name == "UTC" or name in RECORDED_ZONES)
    except CalendarError as err:
        return False, str(err)
    return True, ""


def _generated(count: int) -> list[str]:
    """Expressions built at random (seeded) from calendar pieces, valid and not."""
    pick = random.Random(252)
    numbers = ["*", "0", "1", "2", "3", "5", "7", "10", "12", "15", "23", "24", "28", "29", "31", "59", "60", "69", "2026"]

    def field(seconds: bool = False) -> str:
        if pick.random() < 0.4:
            return "*"
        parts = []
        for _ in range(pick.choice([1, 1, 2, 3])):
            part = pick.choice(numbers[1:])
            if seconds and pick.random() < 0.3:
                part += pick.choice([".5", ".25", ".9999995", "."])
            if pick.random() < 0.25:
                part += ".." + pick.choice(numbers[1:])
            if pick.random() < 0.3:
                part += "/" + pick.choice(["0", "1", "2", "5", "15", "30", "60"])
            parts.append(part)
        return ",".join(parts)

    made = []
    for _ in range(count):
        words = []
        if pick.random() < 0.3:
            words.append(pick.choice(["Mon", "fri", "Sunday", "Sat,Sun", "Mon..Fri", "Fri..Mon", "Mon-Wed", "Mon,", "Frii"]))
        kind = pick.random()
        if kind < 0.4:
            words.append(f"{field()}-{field()}{pick.choice('-~')}{field()}")
        elif kind < 0.6:
            words.append(f"{field()}{pick.choice('-~')}{field()}")
        kind = pick.random()
        if kind < 0.5:
            words.append(f"{field()}:{field()}")
        elif kind < 0.85:
            words.append(f"{field()}:{field()}:{field(seconds=True)}")
        made.append(" ".join(words) + pick.choice(["", "", " UTC", " utc", " Europe/Berlin", " PST", "  UTC"]))
    return made


@pytest.mark.parametrize(("expression", "accepted"), VERDICTS, ids=[repr(e)[:40] for e, _ in VERDICTS])
def test_the_module_agrees_with_every_recorded_systemd_verdict(expression: str, accepted: bool) -> None:
    ours, why = _ours(expression)
    assert ours == accepted, (
        f"{expression!r}: systemd-analyze calendar 252 {'accepts' if accepted else 'refuses'} it, "
        f"systemd_calendar.parse {'accepts' if ours else 'refuses'} it {why}")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_recorded_verdicts_and_generated_expressions_still_hold_for_the_installed_systemd() -> None:
    version = subprocess.run(["systemd-analyze", "--version"], capture_output=True, text=True, check=False).stdout
    drifted = [f"recorded {e!r}: {a} -> {not a}" for e, a in VERDICTS if _systemd_accepts(e) != a]
    differ = []
    for expression in _generated(120):
        ours, why = _ours(expression)
        if _systemd_accepts(expression) != ours:
            differ.append(f"{expression!r}: systemd {not ours}, ours {ours} {why}")
    assert not drifted and not differ, (
        f"{version.splitlines()[0] if version else 'systemd'} parses calendar expressions differently from "
        f"the recorded verdicts / components/systemd_calendar.py: {drifted + differ}")


def _live_gap_seconds(expression: str, iterations: int) -> float:
    listing = subprocess.run(["systemd-analyze", "calendar", f"--iterations={iterations}", expression],
                             capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"}).stdout
    stamps = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S")
              for m in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", listing)]
    assert len(stamps) == iterations, listing
    return min((b - a).total_seconds() for a, b in zip(stamps, stamps[1:]))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(("expression", "iterations"), [
    ("minutely", 5), ("*:0/2", 5), ("*:01,58", 5), ("*:00:00,30", 5), ("*:0/15", 6), ("00/6:00:00", 6),
    ("0,23:0,58", 12), ("Sun,Mon 0,23:0,58", 40),
])
def test_the_shortest_interval_is_the_one_systemd_lists(expression: str, iterations: int) -> None:
    gap = systemd_calendar.shortest_gap_usec(parse(expression))
    assert gap is not None
    live = _live_gap_seconds(expression, iterations)
    assert gap / systemd_calendar.USEC_PER_SEC == live, (
        f"{expression!r}: the module says {gap / 1e6}s between firings, systemd-analyze lists {live}s")


@pytest.mark.skipif(not os.path.isdir("/usr/share/zoneinfo"), reason="no tz database at /usr/share/zoneinfo")
@pytest.mark.parametrize("name", [*sorted(RECORDED_ZONES), "CEST", "PST", "Mars/Olympus", "europe/berlin", "UTC",
                                  "Etc//UTC", "/Etc/UTC", "Etc/UTC/", "../zoneinfo/UTC", "Europe/Berlin.tab"])
def test_time_zones_are_looked_up_as_systemd_does(name: str) -> None:
    expected = name == "UTC" or name in RECORDED_ZONES
    assert systemd_calendar.zone_known(name) == expected, f"{name}: systemd would {'' if expected else 'not '}take it"


def test_the_parsed_sets_are_what_systemd_normalises_to() -> None:
    six = parse("*-*-* 00/6:00:00")
    assert (six.hours(), six.minutes(), six.seconds_usec()) == ((0, 6, 12, 18), (0,), (0,))
    weekdays = parse("Mon..Wed,Fri 02:30")
    assert weekdays.weekdays == frozenset({0, 1, 2, 4}) and weekdays.hours() == (2,) and weekdays.minutes() == (30,)
    last_monday = parse("Mon *-05~07/1")
    assert last_monday.end_of_month and last_monday.days_in(31) == frozenset(range(25, 32))
    assert parse("*:*:1.9999995").seconds_usec() == (2_000_000,)  # the 7th decimal rounds
    assert parse("69-01-01").year == (systemd_calendar.Part(2069),)  # two-digit years
    assert parse("12:00 utc").utc and parse("12:00 Etc/UTC", zone_known=lambda n: n == "Etc/UTC").timezone == "Etc/UTC"
    assert set(systemd_calendar.SHORTHANDS) >= set(config.BACKUP_SCHEDULE_SHORTHANDS) | {"minutely", "annually"}


@pytest.mark.parametrize(("schedule", "message"), BACKUP_RULE, ids=[s for s, _ in BACKUP_RULE])
def test_the_backup_rule(schedule: str, message: str | None) -> None:
    problem = repeating_schedule_problem(schedule, min_gap_seconds=config.BACKUP_MIN_INTERVAL_SECONDS,
                                         zone_known=lambda n: n == "UTC" or n in RECORDED_ZONES)
    if message is None:
        assert problem is None, f"{schedule!r} should be a fine backup schedule: {problem}"
    else:
        assert problem is not None and message in problem, f"{schedule!r}: expected {message!r}, got {problem!r}"


@pytest.mark.parametrize(("schedule", "message"), [
    ("Mon..Frii 25:00", "'Frii' is not a weekday"),
    ("hourly, daily", "one value is one expression"),
    ("every hour", "not a systemd calendar expression"),
    ("*-*-* *:*:*", "fires every second"),
    ("*:0/2", "fires every 2 minutes"),
    ("2026-13-01", "month 13"),
])
def test_a_schedule_systemd_or_the_interval_rule_refuses_stops_before_any_resource(schedule: str, message: str) -> None:
    plan = run_program(stack_config(backup={"schedule": schedule}), stack="dev")
    assert plan.error is not None and message in plan.error and "kubeadm-cluster:backup.schedule" in plan.error, plan.error
    assert "e.g." in plan.error or "like 'Mon..Fri 02:30'" in plan.error, f"the message shows no allowed form: {plan.error}"
    assert not plan.resources or all(r.type.startswith("pulumi:") for r in plan.resources), (
        f"resources registered despite backup.schedule {schedule!r}: {[r.name for r in plan.resources]}")


@pytest.mark.parametrize("schedule", [" daily ", "Mon..Fri 02:30", "*:0/15", "Sat,Sun *-*-* 10:00"])
def test_good_schedules_reach_the_timer(schedule: str) -> None:
    loaded = config.parse_cluster_config({"adminCidrs": '["203.0.113.7/32"]', "backup": json.dumps({"schedule": schedule})})
    assert loaded.backup.schedule == schedule.strip()
