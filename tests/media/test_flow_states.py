"""MediaFlowIn/OutStateChanged of the elements between endpoints (PassThrough, routing hubs'
ports, a recorder): they follow the media that reaches them, NOT_FLOWING when it stops (the
source's flow timed out, or the link was removed) and FLOWING again when it comes back, as KMS's
pad probes report them. A PBX's RTP drives it (UDP on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from emulator.transport.client import EventStream, KurentoClient, RemoteObject
from protocol.sdp import SessionDescription
from tests.conftest import make_settings, server_and_client
from tests.media.rtp_peers import RtpSender, UdpPeer, peer_sdp, udp_peer

FLOW_TIMEOUT = 0.5
"""``media_flow_timeout`` of these tests' server: the PBX's silence is noticed quickly."""


def _target(sdp: str) -> tuple[str, int]:
    description = SessionDescription.parse(sdp)
    media = description.media[0]
    return (media.connection or description.connection or "").split()[-1], media.port


@contextlib.asynccontextmanager
async def _pbx_call(pipeline: RemoteObject) -> AsyncIterator[tuple[RemoteObject, UdpPeer, str]]:
    """An RtpEndpoint answering a PBX's PCMU offer: the endpoint, the PBX and its answer."""
    endpoint = await pipeline.create("RtpEndpoint")
    async with udp_peer() as pbx:
        answer = await endpoint.invoke("processOffer", offer=peer_sdp(pbx.port))
        yield endpoint, pbx, answer


class Talker:
    """A PBX sending PCMU every 20 ms (the pace of a real call) until told to stop."""

    def __init__(self, pbx: UdpPeer, answer: str) -> None:
        self.pbx, self.target, self.sender = pbx, _target(answer), RtpSender(0)
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._talk())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _talk(self) -> None:
        while True:
            self.pbx.send(self.sender.packet(), self.target)
            await asyncio.sleep(0.02)  # pacing a 20 ms ptime, not waiting for anything


async def _states(streams: list[EventStream]) -> list[str]:
    return [(await stream.get())["state"] for stream in streams]


async def _flows(element: RemoteObject) -> list[EventStream]:
    return [
        await element.subscribe("MediaFlowInStateChanged"),
        await element.subscribe("MediaFlowOutStateChanged"),
    ]


def _server() -> contextlib.AbstractAsyncContextManager[tuple[object, KurentoClient]]:
    return server_and_client(make_settings(media_flow_timeout=FLOW_TIMEOUT))


async def test_pass_through_flows_stop_and_start_with_its_source() -> None:
    """PBX -> RtpEndpoint -> PassThrough -> RtpEndpoint -> PBX: the PassThrough's flows are
    FLOWING while the first PBX talks, NOT_FLOWING once its endpoint's flow in times out, and
    FLOWING again when it talks again; the far endpoint keeps its own clock."""
    async with _server() as (_, client):
        pipeline = await client.create("MediaPipeline")
        middle = await pipeline.create("PassThrough")
        async with (
            _pbx_call(pipeline) as (caller, pbx, answer),
            _pbx_call(pipeline) as (
                callee,
                listener,
                _,
            ),
        ):
            await caller.connect(middle)
            await middle.connect(callee)
            flows = await _flows(middle)
            caller_in = await caller.subscribe("MediaFlowInStateChanged")
            talker = Talker(pbx, answer)
            talker.start()
            await listener.next_rtp()
            assert await _states(flows) == ["FLOWING", "FLOWING"]
            assert await middle.invoke("isMediaFlowingIn", mediaType="AUDIO") is True
            await talker.stop()
            assert (await caller_in.get())["state"] == "FLOWING"
            assert (await caller_in.get())["state"] == "NOT_FLOWING"
            assert await _states(flows) == ["NOT_FLOWING", "NOT_FLOWING"]
            assert await middle.invoke("isMediaFlowingIn", mediaType="AUDIO") is False
            talker.start()
            await listener.next_rtp()
            assert await _states(flows) == ["FLOWING", "FLOWING"]
            await talker.stop()


async def test_disconnecting_the_source_stops_the_flow_at_once() -> None:
    """A link removed while media flows: the sink's flows go NOT_FLOWING without waiting for
    a timeout (nothing can reach it any more)."""
    async with _server() as (_, client):
        pipeline = await client.create("MediaPipeline")
        middle = await pipeline.create("PassThrough")
        tail = await pipeline.create("PassThrough")
        await middle.connect(tail)
        async with _pbx_call(pipeline) as (caller, pbx, answer):
            await caller.connect(middle)
            flows, tail_in = await _flows(middle), await tail.subscribe("MediaFlowInStateChanged")
            talker = Talker(pbx, answer)
            talker.start()
            try:
                assert await _states(flows) == ["FLOWING", "FLOWING"]
                assert (await tail_in.get())["state"] == "FLOWING"
                await caller.invoke("disconnect", sink=middle.id)
                assert await _states(flows) == ["NOT_FLOWING", "NOT_FLOWING"]
                assert (await tail_in.get())["state"] == "NOT_FLOWING"
            finally:
                await talker.stop()


async def test_routing_hub_ports_and_a_recorder_follow_the_source(tmp_path: Path) -> None:
    """PBX -> RtpEndpoint -> Dispatcher port A, routed to port B -> RecorderEndpoint: port A's
    flow in, port B's flow out and the recorder's flow in stop with the PBX's silence."""
    async with _server() as (_, client):
        pipeline = await client.create("MediaPipeline")
        dispatcher = await pipeline.create("Dispatcher")
        port_a, port_b = [await dispatcher.create("HubPort") for _ in range(2)]
        recorder = await pipeline.create("RecorderEndpoint", uri=(tmp_path / "call.webm").as_uri())
        async with _pbx_call(pipeline) as (caller, pbx, answer):
            await caller.connect(port_a)
            await port_b.connect(recorder)
            await dispatcher.invoke("connect", source=port_a.id, sink=port_b.id)
            streams = [
                await port_a.subscribe("MediaFlowInStateChanged"),
                await port_b.subscribe("MediaFlowOutStateChanged"),
                await recorder.subscribe("MediaFlowInStateChanged"),
            ]
            talker = Talker(pbx, answer)
            talker.start()
            assert await _states(streams) == ["FLOWING"] * 3
            await talker.stop()
            assert await _states(streams) == ["NOT_FLOWING"] * 3


async def test_removing_the_source_of_a_dispatcher_one_to_many_stops_its_ports() -> None:
    """``removeSource`` while the source talks: the other ports' flows out stop at once, and
    what they fed stops with them."""
    async with _server() as (_, client):
        pipeline = await client.create("MediaPipeline")
        hub = await pipeline.create("DispatcherOneToMany")
        source_port, other_port = [await hub.create("HubPort") for _ in range(2)]
        tail = await pipeline.create("PassThrough")
        await other_port.connect(tail)
        async with _pbx_call(pipeline) as (caller, pbx, answer):
            await caller.connect(source_port)
            await hub.invoke("setSource", source=source_port.id)
            port_out = await other_port.subscribe("MediaFlowOutStateChanged")
            tail_in = await tail.subscribe("MediaFlowInStateChanged")
            talker = Talker(pbx, answer)
            talker.start()
            try:
                assert await _states([port_out, tail_in]) == ["FLOWING"] * 2
                await hub.invoke("removeSource")
                assert await _states([port_out, tail_in]) == ["NOT_FLOWING"] * 2
            finally:
                await talker.stop()
