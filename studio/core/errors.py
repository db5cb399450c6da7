"""Errors a user can act on.

A `StudioError` carries one line that names the problem and what to do about it; the CLI prints it
without a traceback and exits with status 2, the GUI shows it in its error panel.
"""

from __future__ import annotations


class StudioError(Exception):
    """A problem with the user's input or machine, with the remedy in the same sentence."""

    def __init__(self, problem: str, remedy: str = "") -> None:
        self.problem = problem.rstrip(". ")
        self.remedy = remedy.strip()
        super().__init__(f"{self.problem}: {self.remedy}" if self.remedy else self.problem)


class Cancelled(Exception):
    """Raised between steps of long work when the user cancelled it."""
