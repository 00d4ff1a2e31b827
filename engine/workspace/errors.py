"""The one exception the workspace raises, and the result of loading a workspace file."""

from __future__ import annotations

from engine.appspec.diagnostics import Diagnostic, Findings


class WorkspaceError(Findings, Exception):
    """A workspace cannot be used: the file is invalid (`diagnostics` holds every finding), or a
    lookup named an application, group or config that does not exist."""

    def __init__(self, message: str, diagnostics: tuple[Diagnostic, ...] = ()) -> None:
        self.message = message
        self.diagnostics = diagnostics
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join([self.message, *(str(d) for d in self.errors)])


class WorkspaceNotFoundError(WorkspaceError):
    """No workspace file where `find_workspace` looked."""
