"""Before a worker starts: the context files it will be sent, each with its size in tokens, and the whole first
request against the model's context window. Token counts are estimates (~4 characters a token); a model whose
window is not known says so instead of guessing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from conductor.app.cost_estimate import CHARS_PER_TOKEN, CostEstimator, fmt_k
from conductor.config import split_model_ref

KNOWN_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gemini-", 1_048_576),
    ("gpt-5", 400_000),
    ("gpt-4.1", 1_047_576),
    ("claude-", 200_000),
)
"""Input windows by model-name prefix (as the providers publish them), for the models the app ships prices for.
A model on a local endpoint or with another name has an unknown window."""

WARN_SHARE = 0.8


def context_window(model: str) -> int | None:
    endpoint, bare = split_model_ref(model)
    if endpoint not in (None, "gemini", "openai", "anthropic"):
        return None  # a local server's window is whatever it was started with
    name = bare.removeprefix("models/")
    return next((size for prefix, size in KNOWN_WINDOWS if name.startswith(prefix)), None)


def _tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class ContextBudget:
    files: tuple[tuple[str, int], ...]
    """(path, estimated tokens) of each context file as it will be sent (a refused file: its refusal note)."""
    prompt_tokens: int
    system_tokens: int
    tool_tokens: int
    window: int | None

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.system_tokens + self.tool_tokens

    @property
    def share(self) -> float | None:
        return self.total / self.window if self.window else None

    @property
    def too_big(self) -> bool:
        return self.window is not None and self.total > self.window

    def files_line(self) -> str:
        if not self.files:
            return "no context files"
        return " · ".join(f"{path} ~{fmt_k(n)}" if n else f"{path} (missing)" for path, n in self.files)

    def summary(self, model: str) -> str:
        head = (f"First request ~{fmt_k(self.total)} tokens (prompt {fmt_k(self.prompt_tokens)}, system "
                f"{fmt_k(self.system_tokens)}, tools {fmt_k(self.tool_tokens)})")
        if self.window is None:
            return f"{head} · {model}'s context window is unknown"
        share = self.total / self.window
        verdict = " — TOO BIG for the window" if self.too_big else (" — close to the limit" if share > WARN_SHARE
                                                                    else "")
        return f"{head} · {share:.1%} of {model}'s {self.window:,}-token window{verdict}"


def context_budget(est: CostEstimator, model: str, prompt: str, system: str, files: Sequence[str]) -> ContextBudget:
    """The prompt as edited already holds the files' text; the per-file figures say where that size comes from."""
    sizes = tuple((p, _tokens(est.context_chars([p]))) for p in dict.fromkeys(files))
    return ContextBudget(sizes, _tokens(len(prompt)), _tokens(len(system)), _tokens(est.tool_chars),
                         context_window(model))
