"""The app's own exception tree. Provider and library errors are translated into it once, at the boundary.

    ConductorError
    ├── UserError                 a request that cannot be done as asked (names the ticket, track or state)
    ├── ConfigError               bad config.toml (names the file and the key)
    ├── PlanInvalid               a planning tier gave no valid plan after repairs (raw output kept)
    ├── DagInvalid                duplicate / unknown / self / cyclic dependencies (names the ids)
    ├── BudgetExceeded            a model call would exceed the configured budget
    ├── Cancelled                 the work was cancelled by the user
    ├── ApprovalError             unknown / already resolved / mismatched approval
    ├── StoreError                a tracks-folder file is corrupt or cannot be written
    ├── ToolError                 a workspace tool failed (returned to the model as a result)
    │   └── SandboxViolation      a path or command the sandbox refuses
    └── ProviderError             anything a model provider did wrong
        ├── NetworkForbidden      a real network call was attempted where none is allowed (tests)
        ├── MissingApiKey         no GEMINI_API_KEY / GOOGLE_API_KEY in the environment
        ├── TransientProviderError    worth retrying
        │   ├── RateLimited           429 (may carry a retry delay)
        │   ├── ProviderUnavailable   500 / 503 / 504, connection refused
        │   ├── StreamInterrupted     stream cut, error mid-stream, or no finish reason
        │   └── CallTimeout           the per-call deadline passed
        ├── QuotaExhausted        a per-day quota is spent: the track pauses until it resets (not retried)
        └── PermanentProviderError    not retried, shown to the user
            ├── BadRequest            400 / 403 / 404
            │   ├── AuthFailed        401 / 403: the key is wrong, revoked or not allowed this model
            │   └── ContextTooLong    the prompt does not fit the model's context window
            ├── SafetyBlocked         SAFETY finish or blocked prompt: a human decides
            └── OutputTruncated       MAX_TOKENS: never parsed as a plan
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conductor.model import Usage


class ConductorError(Exception):
    """Root of every error the app raises on purpose."""


class UserError(ConductorError, ValueError):
    """The person asked for something that cannot be done as asked: a ticket that does not exist, a command for
    the wrong state, an empty epic. The message says what and why; front ends show it, never a traceback.
    (A ValueError too, so code that validates input keeps catching it.)"""


class ConfigError(ConductorError):
    """config.toml could not be read or is invalid. The message names the file, the key and what was expected."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.key = key


class PlanInvalid(ConductorError):
    """A planning tier (1 or 2) gave no valid plan within its repair attempts."""

    def __init__(self, message: str, *, raw_output_path: str | None = None, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.raw_output_path = raw_output_path
        self.errors = errors or []


class DagInvalid(ConductorError):
    """The ticket graph is not a valid DAG. `problems` lists each one with the ids involved."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid ticket graph: " + "; ".join(problems))
        self.problems = problems


class BudgetExceeded(ConductorError):
    """The next model call is refused because the budget is spent."""


class Cancelled(ConductorError):
    """The user cancelled the work."""


class ApprovalError(ConductorError):
    """An approval could not be resolved: unknown id, already resolved, or bound to another request."""


class StoreError(ConductorError):
    """A file in the tracks folder is corrupt or could not be written."""


class ToolError(ConductorError):
    """A workspace tool failed; the worker returns the message to the model."""


class SandboxViolation(ToolError):
    """A path or command was refused by the sandbox."""


class ProviderError(ConductorError):
    """A model call failed. `usage` holds the last counts seen (partial) when some were reported."""

    retryable = False
    http_requests = 1
    """HTTP requests the provider made for this failure (the SDK's own retries included); all count against
    the one retry budget of a model call."""

    def __init__(self, message: str, *, usage: Usage | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.usage = usage
        self.status = status


class NetworkForbidden(ProviderError):
    """A real network call was attempted while the network is off (tests, offline demo)."""


class MissingApiKey(ProviderError):
    """No API key in the environment."""


class TransientProviderError(ProviderError):
    """A failure that is worth retrying with backoff."""

    retryable = True


class RateLimited(TransientProviderError):
    """HTTP 429. `retry_after_s` is the server's hint when it gave one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(message, **kw)
        self.retry_after_s = retry_after_s


class ProviderUnavailable(TransientProviderError):
    """HTTP 500/503/504 or a refused connection."""


class StreamInterrupted(TransientProviderError):
    """The stream broke: cut connection, error event mid-stream, or clean close with no finish reason."""


class CallTimeout(TransientProviderError):
    """The per-call deadline passed."""


class QuotaExhausted(ProviderError):
    """A per-day quota is spent (429 RESOURCE_EXHAUSTED naming a PerDay quota). Retrying before the reset only
    burns requests: the call is not retried, the model's gate refuses further calls, and the engine pauses the
    track. The message says which quota and when it resets (when known)."""

    def __init__(self, message: str, *, model: str = "", quota_id: str = "", resets_at: float | None = None,
                 usage: Usage | None = None, status: int | None = None) -> None:
        super().__init__(message, usage=usage, status=status)
        self.model = model
        self.quota_id = quota_id
        self.resets_at = resets_at
        """Wall-clock time (epoch seconds) the quota resets, None when unknown."""


class PermanentProviderError(ProviderError):
    """A failure that retrying the same request will not fix."""


class BadRequest(PermanentProviderError):
    """HTTP 400/403/404: the request (or key, or model name) is wrong."""


class AuthFailed(BadRequest):
    """HTTP 401/403: the endpoint refused the key. The message names the environment variable to check."""


class ContextTooLong(BadRequest):
    """The prompt is longer than the model's context window: retrying the same request cannot help."""


class SafetyBlocked(PermanentProviderError):
    """The prompt or the answer was blocked for safety. A human decides what happens next."""


class OutputTruncated(PermanentProviderError):
    """The model hit its output limit (MAX_TOKENS). The text is never parsed as a plan."""

    def __init__(self, message: str, *, partial_text: str = "", **kw) -> None:  # type: ignore[no-untyped-def]
        super().__init__(message, **kw)
        self.partial_text = partial_text
