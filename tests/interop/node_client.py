"""Runs ``js/scenario.js`` (the official kurento-client 7.3.0 under Node) and reads its reports."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

JS_DIR = Path(__file__).resolve().parent / "js"
REPORT_PREFIX = "@@ "


class NodeScenario:
    """A running scenario: its JSON report lines, and a way to send it commands."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.reports: list[dict[str, Any]] = []
        self.unread: list[dict[str, Any]] = []
        """Reports read while waiting for another step, kept for the step that wants them (the
        server's candidates may reach Node before its ``answered`` report)."""

    @classmethod
    @contextlib.asynccontextmanager
    async def run(
        cls, url: str, scenario: str, env: dict[str, str] | None = None
    ) -> AsyncIterator[NodeScenario]:
        """Start ``node scenario.js url scenario`` (with ``env`` added to the environment); kill
        it at the end if still running."""
        if not (JS_DIR / "node_modules" / "kurento-client").is_dir():
            raise RuntimeError("kurento-client is not installed: run `make js-deps`")
        process = await asyncio.create_subprocess_exec(
            "node",
            "scenario.js",
            url,
            scenario,
            cwd=JS_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        running = cls(process)
        try:
            yield running
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()

    async def step(self, name: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for the report of a step; a failed scenario raises with Node's error."""
        return await self.step_any((name,), timeout)

    async def step_any(self, names: tuple[str, ...], timeout: float = 20.0) -> dict[str, Any]:
        """Wait for the next report of any of these steps (reports of other steps that arrive
        meanwhile are kept for them, in order)."""
        for index, report in enumerate(self.unread):
            if report["step"] in names:
                return dict(self.unread.pop(index))
        assert self.process.stdout is not None
        while True:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
            if not line:
                stderr = await self._stderr()
                raise AssertionError(f"scenario ended before {names}: {self.reports} {stderr}")
            text = line.decode(errors="replace")
            if not text.startswith(REPORT_PREFIX):
                continue  # kurento-client's own console.log lines
            report = json.loads(text[len(REPORT_PREFIX) :])
            self.reports.append(report)
            if report["step"] == "failed":
                raise AssertionError(f"scenario failed: {report['error']}")
            if report["step"] in names:
                return dict(report)
            self.unread.append(report)

    async def command(self, word: str) -> None:
        """Send a command line to the scenario."""
        assert self.process.stdin is not None
        self.process.stdin.write(word.encode() + b"\n")
        await self.process.stdin.drain()

    async def finish(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit; returns its exit code."""
        await self.step("done", timeout)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def _stderr(self) -> str:
        assert self.process.stderr is not None
        data = await self.process.stderr.read()
        return data.decode(errors="replace")[-2000:]
