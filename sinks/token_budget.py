"""Token counting and fitting a prompt's event rows into a budget (pure).

Counting: the served model's own tokenizer when the server offers one (the LLM client asks
llama.cpp's or vLLM's /tokenize), else `estimate_tokens`, a deliberate over-estimate: chat
tokenizers cut log-like text (ids, timecodes, URLs, pipes) into 2 to 3 characters per token,
not the 4 of English prose.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

# Safe upper bound for log-shaped text: measured SmolLM2/Llama tokenizers give 2.4-3.1 chars
# per token on our tables; 2 keeps every prompt under its budget.
CHARS_PER_TOKEN = 2
# Chat templates add role markers and separators around each message.
TOKENS_PER_MESSAGE = 8
LOW_VALUE_TYPES = ("scroll", "element-seen")

Counter = Callable[[str], int]


def estimate_tokens(text: str) -> int:
    """An over-estimate of the tokens of `text` for any current chat tokenizer."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


@dataclass
class Row:
    short_id: str
    event: dict[str, Any]
    line: str
    protected: bool
    low_value: bool
    events: int = 1  # a collapsed scroll run stands for several events

    @property
    def cost(self) -> int:
        return estimate_tokens(self.line + "\n")


def fit_rows(rows: list[Row], budget: int) -> tuple[list[Row], list[str]]:
    """Drop rows until their cost fits `budget`: scrolls, element-seen, then the middle."""
    kept = list(rows)
    omitted: list[str] = []

    def total() -> int:
        return sum(r.cost for r in kept)

    for low_type in LOW_VALUE_TYPES:
        if total() <= budget:
            return kept, omitted
        dropped = [r for r in kept if r.event.get("type") == low_type and not r.protected]
        if dropped:
            kept = [r for r in kept if r not in dropped]
            omitted.append(f"{sum(r.events for r in dropped)} {low_type} events omitted")
    for protected in (False, True):
        if total() <= budget:
            break
        omitted.extend(_drop_middle(kept, budget, protected))
    return kept, omitted


def _drop_middle(kept: list[Row], budget: int, protected: bool) -> list[str]:
    """Remove rows (in place) nearest the middle of the timeline first."""
    candidates = [i for i, r in enumerate(kept) if r.protected == protected]
    if not candidates:
        return []
    middle = (len(kept) - 1) / 2
    candidates.sort(key=lambda i: (abs(i - middle), i))
    over = sum(r.cost for r in kept) - budget
    doomed: set[int] = set()
    for i in candidates:
        if over <= 0:
            break
        doomed.add(i)
        over -= kept[i].cost
    if not doomed:
        return []
    first, last = min(doomed), max(doomed)
    span = f"between {kept[first].line.split('|')[1]} and {kept[last].line.split('|')[1]}"
    kind = "signal/error" if protected else "other"
    count = sum(kept[i].events for i in doomed)
    kept[:] = [r for i, r in enumerate(kept) if i not in doomed]
    return [f"{count} {kind} events {span} omitted"]


def prompt_budget(max_prompt_tokens: int, context_tokens: int, max_output_tokens: int) -> int:
    """Tokens the prompt may use: its own cap, and what the context window leaves after the answer."""
    room = context_tokens - max_output_tokens
    if room <= 0:
        raise ValueError(f"the model's context window ({context_tokens} tokens) leaves no room for the "
                         f"prompt after {max_output_tokens} output tokens")
    return min(max_prompt_tokens, room)
