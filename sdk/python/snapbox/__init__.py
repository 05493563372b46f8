"""snapbox: a stdlib-only client for snapboxd, the snapbox sandbox service (docs/api.md)."""
from .client import (
    Client, Template, Sandbox, ExecResult, RunResult, PoolState,
    SnapboxError, BadRequest, Unauthorized, Forbidden, NotFound, Conflict, TooLarge,
    Unprocessable, LimitReached, InternalError, GuestFailed, Unavailable, GuestTimeout,
)

__all__ = [
    "Client", "Template", "Sandbox", "ExecResult", "RunResult", "PoolState",
    "SnapboxError", "BadRequest", "Unauthorized", "Forbidden", "NotFound", "Conflict", "TooLarge",
    "Unprocessable", "LimitReached", "InternalError", "GuestFailed", "Unavailable", "GuestTimeout",
]
