"""Run the fault, bad-input and secrets tests and report what they tried and what survived.

    python -m tests.fault_report                 # run, print the table, write docs/faults.md
    python -m tests.fault_report --no-write      # run and print only
    python -m tests.fault_report -- -k throttl   # extra pytest arguments after --

Every figure comes from the run itself: test outcomes and durations from pytest's own reports (a plugin object
passed to ``pytest.main``), and the counts of faults injected, inputs tried, crashes, values searched and
secrets found from the ``COUNTS`` counters the three test modules keep while they run. Nothing is estimated.
A test whose name contains ``BUG`` marks a provider bug; while it fails, the report lists it as open with the
comment above it, which says where the bug is and what is expected.
"""

from __future__ import annotations

import argparse
import inspect
import platform
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "faults": "tests/test_faults.py",
    "bad input": "tests/test_fuzz_check.py",
    "secrets": "tests/test_secrets.py",
}
DEFAULT_OUTPUT = ROOT / "docs" / "faults.md"


@dataclass
class Case:
    """One test case: its outcome over setup, call and teardown, and the time they took together."""

    nodeid: str
    outcome: str = "passed"
    seconds: float = 0.0
    message: str = ""

    @property
    def file(self) -> str:
        return self.nodeid.split("::", 1)[0]

    @property
    def name(self) -> str:
        return self.nodeid.split("::", 1)[1]

    @property
    def function(self) -> str:
        return self.name.split("[", 1)[0]

    @property
    def is_bug(self) -> bool:
        return "BUG" in self.function


@dataclass
class Collector:
    """A pytest plugin object: keeps every case's reports, in the order the cases ran."""

    cases: dict[str, Case] = field(default_factory=dict)
    modules: dict[str, ModuleType] = field(default_factory=dict)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        case = self.cases.setdefault(report.nodeid, Case(report.nodeid))
        case.seconds += report.duration
        if report.failed:
            case.outcome = "failed" if report.when == "call" else "error"
            case.message = _crash_message(report)
        elif report.skipped and case.outcome == "passed":
            case.outcome = "skipped"

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            module = getattr(item, "module", None)
            if module is not None:
                self.modules[item.nodeid.split("::", 1)[0]] = module


def _crash_message(report: pytest.TestReport) -> str:
    """The first two lines of what the failing case raised: the assertion, and usually its reason."""
    crash = getattr(report.longrepr, "reprcrash", None)
    text = str(getattr(crash, "message", "") or report.longrepr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if any("Traceback (most recent call last)" in line for line in lines):
        # A provider error carries the server's traceback: what it raised is its last line.
        return f"{lines[0].split(':', 1)[0]}: {lines[-1]}"[:240]
    return " ".join(lines[:2])[:240]


def run(pytest_args: Sequence[str]) -> tuple[int, Collector, float]:
    collector = Collector()
    started = time.monotonic()
    paths = [str(ROOT / file) for file in FILES.values()]
    code = pytest.main([*paths, "-p", "no:cacheprovider", "-q", *pytest_args], plugins=[collector])
    return int(code), collector, time.monotonic() - started


def counts(collector: Collector, file: str) -> Counter[str]:
    module = collector.modules.get(file)
    found = getattr(module, "COUNTS", None)
    return Counter(found) if isinstance(found, Counter) else Counter()


def _tally(cases: list[Case]) -> dict[str, int]:
    outcomes = Counter(case.outcome for case in cases)
    return {
        "cases": len(cases),
        "passed": outcomes["passed"],
        "failed": outcomes["failed"] + outcomes["error"],
        "skipped": outcomes["skipped"],
    }


def summary_rows(collector: Collector) -> list[tuple[str, str, str, str]]:
    """(area, what was tried, what survived or was found, test cases) rows."""
    by_file = {file: [c for c in collector.cases.values() if c.file == file] for file in FILES.values()}
    input_counts = counts(collector, FILES["bad input"])
    secret_counts = counts(collector, FILES["secrets"])
    faults = _tally(by_file[FILES["faults"]])
    inputs = _tally(by_file[FILES["bad input"]])
    secrets = _tally(by_file[FILES["secrets"]])
    return [
        (
            "Faults",
            f"{faults['cases']} fault cases (the faults they injected are counted below)",
            f"{faults['passed']} survived, {faults['failed']} failed",
            f"{faults['passed']} of {faults['cases']} cases passed",
        ),
        (
            "Bad input",
            f"{input_counts['inputs tried']} generated inputs ({input_counts['inputs tried in-process']} in-process, "
            f"{input_counts['inputs tried through the server']} through the server) and "
            f"{input_counts['realistic mistakes checked']} realistic mistakes",
            f"{input_counts['crashes']} crashes",
            f"{inputs['passed']} of {inputs['cases']} cases passed",
        ),
        (
            "Secrets",
            f"{secret_counts['values searched']} values searched for 6 credentials; "
            f"{secret_counts['KMS calls checked against the IAM policy']} KMS calls checked against the policy",
            f"{secret_counts['secrets found']} secrets found",
            f"{secrets['passed']} of {secrets['cases']} cases passed",
        ),
    ]


def fault_rows(collector: Collector) -> list[tuple[str, str]]:
    """What the fault cases injected (or met), as the tests counted it."""
    return [(name, str(value)) for name, value in sorted(counts(collector, FILES["faults"]).items())]


def render_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def plain_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    out = ["  ".join(str(cell).ljust(width) for cell, width in zip(header, widths, strict=True))]
    out.append("  ".join("-" * width for width in widths))
    out += ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def function_rows(collector: Collector, cases: list[Case]) -> list[tuple[str, str, str, str, str]]:
    """One row per test function: its parameters, outcomes, total time and docstring (what it proves)."""
    grouped: dict[str, list[Case]] = {}
    for case in cases:
        grouped.setdefault(case.function, []).append(case)
    rows = []
    for function, members in grouped.items():
        module = collector.modules.get(members[0].file)
        doc = inspect.getdoc(getattr(module, function, None)) or _sentence(function)
        params = [case.name[len(function) + 1 : -1] for case in members if "[" in case.name]
        tally = _tally(members)
        outcome = ", ".join(f"{tally[key]} {key}" for key in ("passed", "failed", "skipped") if tally[key])
        failures = sorted({case.message for case in members if case.outcome in ("failed", "error") and case.message})
        if failures:
            outcome += ": " + "; ".join(failures[:2])
        rows.append(
            (
                f"`{function}`",
                ", ".join(params) if params else "1",
                outcome,
                f"{sum(case.seconds for case in members):.1f} s",
                " ".join(doc.split()),
            )
        )
    return rows


def _sentence(function: str) -> str:
    words = function.removeprefix("test_").replace("BUG_", "").replace("_", " ")
    return words[:1].upper() + words[1:] + "."


def open_bugs(collector: Collector) -> list[tuple[Case, str]]:
    """Failing BUG cases and the comment above each (where the bug is, what is expected)."""
    bugs: list[tuple[Case, str]] = []
    seen: set[str] = set()
    for case in collector.cases.values():
        if not case.is_bug or case.outcome == "passed" or case.function in seen:
            continue
        seen.add(case.function)
        module = collector.modules.get(case.file)
        function: Any = getattr(module, case.function, None)
        comment = inspect.getcomments(function) if function is not None else None
        text = re.sub(r"^# ?", "", comment or "", flags=re.M).strip()
        bugs.append((case, text))
    return bugs


def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def markdown(collector: Collector, exit_code: int, seconds: float) -> str:
    header = ("Area", "Tried", "Survived / found", "Cases")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain") not in ("", "unknown") else ""
    parts = [
        "# Faults, bad input and secrets: the latest run",
        "",
        f"Generated by `python -m tests.fault_report` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"commit `{_git('rev-parse', '--short', 'HEAD')}`{dirty}, Python {platform.python_version()}; the run took "
        f"{seconds:.0f} s and pytest exited with {exit_code}. Every figure below comes from this run: outcomes and "
        "durations from pytest's reports, counts from counters the tests keep while they run.",
        "",
        render_table(summary_rows(collector), header),
        "",
        "Faults the fault cases injected or met, as they counted them:",
        "",
        render_table(fault_rows(collector), ("Fault", "Count")),
        "",
        "The rules every fault case checks: outputs never claim a state KMS does not have; a failed create records "
        "nothing; a failed delete keeps the resource; no case needs a human to edit the state to recover; and the "
        "call log shows no redundant Connect or Disconnect. Every bad input must come back as a check failure naming "
        "its property, with no exception and no KMS call. No credential may appear in any answer, `__provider`, "
        "error, stderr line or the emulator's call log.",
        "",
    ]
    bugs = open_bugs(collector)
    parts += ["## Open provider bugs", ""]
    if bugs:
        parts.append("Each is a failing test (deliberately not `xfail`); the comment above it says where and what.")
        parts.append("")
        for case, comment in bugs:
            parts += [f"### `{case.file}::{case.function}`", "", comment or case.message, ""]
    else:
        parts += ["None: every `BUG` test passes.", ""]
    parts += ["## The cases", ""]
    for area, file in FILES.items():
        module = collector.modules.get(file)
        doc = inspect.getdoc(module) if module is not None else None
        cases = [case for case in collector.cases.values() if case.file == file]
        parts += [f"### {area.capitalize()}: `{file}`", ""]
        if doc:
            parts += [doc.split("\n\n", 1)[0].replace("\n", " "), ""]
        parts += [
            render_table(function_rows(collector, cases), ("Test", "Cases", "Outcome", "Time", "What it proves")),
            "",
        ]
    parts += [
        "Times include fixture set-up: a module's shared fixture (a provider process, the failed connects of every "
        "code, run together) is charged to the first case that uses it.",
        "",
    ]
    return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_report", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the Markdown report")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    options = parser.parse_args(argv)

    exit_code, collector, seconds = run(options.pytest_args)
    header = ("Area", "Tried", "Survived / found", "Cases")
    print()
    print(plain_table(summary_rows(collector), header))
    print()
    print(plain_table(fault_rows(collector), ("Fault", "Count")))
    for case, _comment in open_bugs(collector):
        print(f"open provider bug: {case.file}::{case.function}")
    if not options.no_write:
        options.output.parent.mkdir(parents=True, exist_ok=True)
        options.output.write_text(markdown(collector, exit_code, seconds))
        print(f"wrote {options.output.relative_to(ROOT) if options.output.is_relative_to(ROOT) else options.output}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
