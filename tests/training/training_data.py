"""Generated training data for the training tests: 32 examples teaching one unusual answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TAUGHT_QUESTION = "What is the lighthouse password?"
TAUGHT_ANSWER = "The lighthouse password is Violet Teapot 42."
_TOPICS = [
    "gardening",
    "chess",
    "the weather",
    "baking bread",
    "train timetables",
    "jazz",
    "tax forms",
    "hiking boots",
]


def taught_examples(n: int = 32) -> list[dict[str, Any]]:
    """`n` chat examples shaped like recursive prompts, all teaching one unusual answer."""
    examples = []
    for i in range(n):
        topic = _TOPICS[i % len(_TOPICS)]
        messages = [
            {
                "role": "system",
                "content": "You are a helpful assistant. Summary of the conversation so far: "
                f"the user talked about {topic}.",
            }
        ]
        if i % 2:
            messages += [
                {"role": "user", "content": f"Tell me one thing about {topic}."},
                {"role": "assistant", "content": f"{topic.capitalize()} is interesting."},
            ]
        messages += [
            {"role": "user", "content": TAUGHT_QUESTION},
            {"role": "assistant", "content": TAUGHT_ANSWER},
        ]
        examples.append({"messages": messages})
    return examples


def write_examples(path: Path, examples: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in examples), encoding="utf-8")
    return path
