"""Findings of ``aiosio doctor`` and their rendering (terminal and JSON)."""

from __future__ import annotations

import enum
import json
import os
import sys
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TextIO

__all__ = ["Finding", "Report", "Verdict"]


class Verdict(enum.Enum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


@dataclass(slots=True)
class Finding:
    """One check's outcome. ``id`` is stable (tests and scripts rely on it)."""

    id: str
    verdict: Verdict
    title: str
    evidence: list[str] = field(default_factory=list)
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Report:
    url: str
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> Finding:
        self.findings.append(finding)
        return finding

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict in (Verdict.FAIL, Verdict.WARN)]

    @property
    def primary(self) -> Finding | None:
        """The first failure, else the first warning: what to fix first."""
        for verdict in (Verdict.FAIL, Verdict.WARN):
            for finding in self.findings:
                if finding.verdict is verdict:
                    return finding
        return None

    @property
    def ok(self) -> bool:
        return not any(f.verdict is Verdict.FAIL for f in self.findings) and not any(
            f.verdict is Verdict.WARN for f in self.findings
        )

    def summary(self) -> str:
        primary = self.primary
        if primary is None:
            return f"OK: {self.url} works as a Socket.IO deployment"
        count = len(self.problems)
        return f"PROBLEM: {primary.title} [{primary.id}]" + (
            f" (+{count - 1} more)" if count > 1 else ""
        )

    def as_json(self) -> str:
        def convert(finding: Finding) -> dict[str, Any]:
            value = asdict(finding)
            value["verdict"] = finding.verdict.value
            return value

        primary = self.primary
        return json.dumps(
            {
                "url": self.url,
                "ok": self.ok,
                "summary": self.summary(),
                "primary": primary.id if primary else None,
                "findings": [convert(f) for f in self.findings],
            },
            indent=2,
        )

    def render(self, out: TextIO | None = None, color: bool | None = None) -> None:
        """Write the report for a person to ``out`` (default: the ``sys.stdout`` of the call, not
        of the import, so that a redirected or captured stdout gets it)."""
        if out is None:
            out = sys.stdout
        if color is None:
            color = out.isatty() and "NO_COLOR" not in os.environ

        def paint(text: str, code: str) -> str:
            return f"\033[{code}m{text}\033[0m" if color else text

        colors = {Verdict.FAIL: "31;1", Verdict.WARN: "33;1", Verdict.INFO: "36", Verdict.OK: "32"}
        marks = {
            Verdict.FAIL: "FAIL",
            Verdict.WARN: "WARN",
            Verdict.INFO: "info",
            Verdict.OK: " ok ",
        }
        out.write(paint(self.summary(), "31;1" if self.primary else "32;1") + "\n\n")
        for finding in self.findings:
            mark = paint(f"[{marks[finding.verdict]}]", colors[finding.verdict])
            out.write(f"{mark} {finding.title}  ({finding.id})\n")
            if finding.verdict is not Verdict.OK:
                for line in finding.evidence:
                    out.write(f"       {line}\n")
                if finding.fix:
                    out.write(paint(f"       fix: {finding.fix}", "1") + "\n")
        out.write("\n")
