"""A real browser runs the Kurento Hello World against the emulator (Debian's chromium, headless).

The test plays the application server with the project's client: a pipeline, a WebRtcEndpoint
connected to itself, the browser's offer in, the answer out, trickle ICE both ways. What the
browser receives is read from its own ``RTCPeerConnection.getStats()``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, async_playwright

from emulator.app import running_emulator
from emulator.transport.client import EventStream, KurentoClient, RemoteObject
from tests.conftest import make_settings
from tests.ports import free_port_range

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PAGE = Path(__file__).with_name("browser_page.html")
# getUserMedia needs a secure context; http://127.0.0.1 is one without TLS. Playwright answers
# the request itself (page.route), so nothing listens on port 80.
PAGE_URL = "http://127.0.0.1/hello-world.html"
MEDIA_TIMEOUT = 20.0

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing (make browser-deps installs it)"
)


async def _serve_page(route: Route) -> None:
    if route.request.url == PAGE_URL:
        await route.fulfill(body=PAGE.read_text(), content_type="text/html")
    else:
        await route.fulfill(status=404, body="")


def _candidate_init(candidate: dict[str, Any]) -> dict[str, Any]:
    """The RTCIceCandidateInit fields, which are also those of Kurento's IceCandidate."""
    return {key: candidate[key] for key in ("candidate", "sdpMid", "sdpMLineIndex")}


async def _relay_browser_candidates(
    candidates: asyncio.Queue[dict[str, Any] | None], endpoint: RemoteObject
) -> None:
    """The browser's trickled candidates to addIceCandidate, until its end of candidates."""
    while (candidate := await candidates.get()) is not None:
        if not candidate.get("candidate"):
            continue
        await endpoint.invoke("addIceCandidate", candidate=_candidate_init(candidate))


async def _relay_server_candidates(
    found: EventStream, page: Page, relayed: list[dict[str, Any]]
) -> None:
    """IceCandidateFound to the browser's addIceCandidate."""
    async for data in found:
        candidate = _candidate_init(data["candidate"])
        relayed.append(candidate)
        await page.evaluate("(c) => helloWorld.addCandidate(c)", candidate)


async def _flowing(flow_in: EventStream, media_type: str, timeout: float) -> list[str]:
    """MediaFlowInStateChanged states seen until ``media_type`` is FLOWING."""
    seen: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            event = await flow_in.get(timeout)
            seen.append(f"{event['mediaType']} {event['state']}")
            if (event["mediaType"], event["state"]) == (media_type, "FLOWING"):
                return seen


async def test_browser_hello_world_receives_audio_and_decodes_video() -> None:
    """Chromium's own getStats shows inbound audio and decoded video from a looped endpoint."""
    ports = free_port_range(100)
    settings = make_settings(min_port=ports.low, max_port=ports.high)
    browser_candidates: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
    browser_states: dict[str, list[str]] = {"ice": [], "connection": []}
    server_candidates: list[dict[str, Any]] = []
    console: list[str] = []
    relays: list[asyncio.Task[None]] = []
    async with (
        running_emulator(settings) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as client,
        async_playwright() as playwright,
    ):
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        await endpoint.connect(endpoint)
        found = await endpoint.subscribe("IceCandidateFound")
        flow_in = await endpoint.subscribe("MediaFlowInStateChanged")

        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            page.on("console", lambda message: console.append(message.text))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            await page.expose_function("kurentoCandidate", browser_candidates.put_nowait)
            await page.expose_function(
                "kurentoState", lambda kind, state: browser_states[kind].append(state)
            )
            await page.route("http://127.0.0.1/**", _serve_page)
            await page.goto(PAGE_URL)

            offer = await page.evaluate("helloWorld.offer()")
            answer = await endpoint.invoke("processOffer", offer=offer)
            await page.evaluate("(sdp) => helloWorld.answer(sdp)", answer)
            relays.append(
                asyncio.create_task(_relay_browser_candidates(browser_candidates, endpoint))
            )
            relays.append(
                asyncio.create_task(_relay_server_candidates(found, page, server_candidates))
            )
            await endpoint.invoke("gatherCandidates")

            stats = await page.evaluate(
                "([timeout, interval]) => helloWorld.waitForMedia(timeout, interval)",
                [MEDIA_TIMEOUT * 1000, 100],
            )
            for relay in relays:
                if relay.done():
                    relay.result()
            seen = (
                f"stats={stats} browser states={browser_states} "
                f"server candidates={[c['candidate'] for c in server_candidates]} "
                f"console={console}"
            )
            assert stats["audio"] is not None and stats["audio"]["packetsReceived"] > 0, seen
            assert stats["audio"]["bytesReceived"] > 0, seen
            assert stats["video"] is not None and stats["video"]["framesDecoded"] > 0, seen
            assert stats["video"]["packetsReceived"] > 0, seen
            assert stats["pair"]["remotePort"] in ports, seen
            assert browser_states["connection"] == ["connecting", "connected"], seen
            flow = await _flowing(flow_in, "VIDEO", timeout=5)
            assert flow[-1] == "VIDEO FLOWING", flow
            await page.evaluate("helloWorld.close()")
        finally:
            for relay in relays:
                relay.cancel()
            await asyncio.gather(*relays, return_exceptions=True)
            await browser.close()
        await pipeline.release()
