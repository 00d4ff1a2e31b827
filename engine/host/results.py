"""What the agent reports: per-script and per-event results with CodeDeploy's error codes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

# LifecycleErrorCode values (docs/codedeploy-service.md#statuses-and-error-codes) and the agent's
# numeric codes (docs/codedeploy-agent.md#hook-exit-status).
SUCCESS = "Success"
SCRIPT_MISSING = "ScriptMissing"
SCRIPT_NOT_EXECUTABLE = "ScriptNotExecutable"
SCRIPT_TIMED_OUT = "ScriptTimedOut"
SCRIPT_FAILED = "ScriptFailed"
UNKNOWN_ERROR = "UnknownError"

AGENT_ERROR_NUMBERS = {
    SUCCESS: 0,
    SCRIPT_MISSING: 1,
    SCRIPT_NOT_EXECUTABLE: 2,
    SCRIPT_TIMED_OUT: 3,
    SCRIPT_FAILED: 4,
    UNKNOWN_ERROR: 5,
}

SUCCEEDED = "Succeeded"
FAILED = "Failed"


@dataclass(frozen=True)
class ScriptResult:
    """One hook script's run."""

    location: str
    path: str
    error_code: str
    message: str
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    started: float = 0.0
    ended: float = 0.0
    log_tail: str = ""
    left_running: List[int] = field(default_factory=list)
    output_files: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_code == SUCCESS


@dataclass(frozen=True)
class CommandResult:
    """One lifecycle event on one host: status plus the diagnostics CodeDeploy reports."""

    command: str
    status: str
    error_code: str = SUCCESS
    script_name: Optional[str] = None
    message: str = ""
    log_tail: str = ""
    exit_code: Optional[int] = None
    started: float = 0.0
    ended: float = 0.0
    revision: str = "current"  # which revision's scripts ran: current, last_successful, ...
    scripts: List[ScriptResult] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == SUCCEEDED

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> CommandResult:
        values = dict(data)
        values["scripts"] = [ScriptResult(**s) for s in values.get("scripts", [])]
        return cls(**values)
