"""Write the README's screenshot: the app on a demo conversation, exported as SVG by Textual.

    python tests/tui/make_screenshot.py docs/screenshot.svg

Uses a temporary database and the scripted model, so it needs no model files
and the picture is the same on every machine.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recursa.agent import Agent  # noqa: E402
from recursa.agent.runtime.scripted import ScriptedRuntime  # noqa: E402
from recursa.tui.app import RecursaApp  # noqa: E402
from tui_helpers import BASE_TIME, demo_conversation, ready, set_updated_at, settle  # noqa: E402

SIZE = (160, 44)
DRAFT = "Which question should I ask Ada first?"


async def shoot(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["RECURSA_HOME"] = tmp
        os.environ["TZ"] = "UTC"  # the demo's fixed timestamps, shown the same everywhere
        time.tzset()
        db = f"sqlite:///{Path(tmp) / 'demo.db'}"
        seed = Agent.open(db, ScriptedRuntime())
        try:
            cid, other = demo_conversation(seed)
        finally:
            seed.close()
        set_updated_at(
            db, {cid: BASE_TIME + timedelta(minutes=20), other: BASE_TIME - timedelta(days=2)}
        )
        app = RecursaApp(model=ScriptedRuntime(), db_url=db)
        app.theme = "textual-dark"
        async with app.run_test(size=SIZE) as pilot:
            screen = await ready(pilot)
            await pilot.press("f3", *DRAFT)
            await settle(
                pilot, lambda: screen.last_preview is not None and screen.last_preview[0] == DRAFT
            )
            screen.composer.cursor_blink = False
            await settle(pilot)
            target.parent.mkdir(parents=True, exist_ok=True)
            app.save_screenshot(filename=target.name, path=str(target.parent))


if __name__ == "__main__":
    asyncio.run(shoot(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.svg")))
