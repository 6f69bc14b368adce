"""recursa.serve: the agent and its memory as an HTTP service that speaks OpenAI's protocol.

`create_app(agent_or_settings)` builds the ASGI application (FastAPI) that
`recursa serve` runs under uvicorn; mount it in your own app or run it with
any ASGI server. Like the CLI and the TUI, it is a surface: everything goes
through `recursa.agent.Agent`. Needs the `serve` extra: pip install 'recursa[serve]'.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app", "run"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported on first use, so `import recursa.serve` costs nothing.
    if name == "create_app":
        from recursa.serve.app import create_app

        return create_app
    if name == "run":
        from recursa.serve.server import run

        return run
    raise AttributeError(f"module 'recursa.serve' has no attribute {name!r}")


if TYPE_CHECKING:
    from recursa.serve.app import create_app
    from recursa.serve.server import run
