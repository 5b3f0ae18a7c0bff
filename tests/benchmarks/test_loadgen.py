"""The compiled load generator (benchmarks/_loadgen.c) counts what really arrived, and a
benchmark run cannot silently measure nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from benchmarks import throughput
from benchmarks.baselines import CompiledRelay, control_server
from benchmarks.control_plane import PreconditionFailed
from benchmarks.load_peers import LOADGEN_IMPORT_ERROR, CompiledSender, Worker, _measure
from emulator.media.fastpath import compiled_available

needs_both = pytest.mark.skipif(
    bool(LOADGEN_IMPORT_ERROR) or not compiled_available(),
    reason=LOADGEN_IMPORT_ERROR or "the compiled forwarding loop is not built",
)


async def _until(sender: CompiledSender, condition: Any, timeout: float) -> None:
    """Wait until ``condition()`` holds, woken by each of the generator's ticks."""
    async with asyncio.timeout(timeout):
        while not condition():
            sender.ticked.clear()
            await sender.ticked.wait()


@needs_both
@pytest.mark.parametrize("video", [False, True], ids=["audio", "audio+video"])
async def test_compiled_generator_counts_equal_what_the_c_relay_forwarded(video: bool) -> None:
    """Three DTLS-SRTP calls (Opus, or Opus and VP8) through the C relay: every packet the
    generator sent in the window is counted received once with a latency, no loss per socket,
    and after the streams stop the generator's totals equal what the relay forwarded (C loop
    plus the first packet of each SSRC, which the relay's Python side passes on before routing
    it; exactly so for Opus, whose frames are one packet each). The window runs past the end of
    the one-second clips, so every stream loops its clip: with two clips, the first stream once
    read a clip freed when the second was stored (a segfault). With BUNDLE, audio and video
    share a socket: its loss counts both senders."""
    relay = CompiledRelay()
    server = await control_server(relay.call)
    port = server.sockets[0].getsockname()[1]
    config = {"worker": 0, "generator": "compiled", "system": "c-relay", "video": video}
    config |= {"extensions": True, "control": ("127.0.0.1", port), "topology": "one-to-one"}
    worker = Worker(config)
    sender = worker.sender
    assert isinstance(sender, CompiledSender)
    try:
        await worker.add_calls(3)
        peers = [peer for call in worker.calls for peer in call.peers]
        await _until(sender, lambda: all(sender.loss(p)[0] > 5 for p in peers), 10)
        start = time.perf_counter() + 0.1
        reply = await _measure(worker, start, start + 1.2, 0.3)
        streams = 6 * (2 if video else 1)
        assert reply["sent"] >= 6 * 50 + (6 * 30 if video else 0)  # 50 Opus, 30+ VP8 packets/s
        assert reply["received"] == reply["sent"]
        assert len(reply["latencies"]) == reply["received"]
        assert 0 < max(reply["latencies"]) < 0.5
        assert reply["srtp_errors"] == reply["send_errors"] == 0
        for peer in peers:
            received, expected = sender.loss(peer)
            assert received == expected
        sender.generator.stop_streams()

        def totals() -> dict[str, int]:
            return dict(sender.generator.results())

        await _until(sender, lambda: totals()["total_received"] == totals()["total_sent"], 5)
        relayed = relay.forwarder.counters()
        if video:
            # a VP8 frame's packets come in one burst: those read before Python routed the
            # SSRC are relayed by Python too (handed back, with STUN, DTLS and RTCP)
            forwarded = relayed["forwarded"]
            assert (
                forwarded + streams <= totals()["total_sent"] <= forwarded + relayed["handed_back"]
            )
        else:
            assert relayed["forwarded"] + streams == totals()["total_sent"]
    finally:
        await worker.close_calls()
        sender.stop()
        server.close()
        for sock in relay.sockets:
            sock.close()


def test_a_level_where_nothing_came_back_fails_loudly() -> None:
    """A system that answered signalling but forwarded nothing is a failed run, not 100 % loss."""
    with pytest.raises(PreconditionFailed, match="nothing"):
        throughput.check_level("c-relay", sent=500, received=0)
    with pytest.raises(PreconditionFailed, match="sent nothing"):
        throughput.check_level("emulator", sent=0, received=0)
    throughput.check_level("emulator", sent=500, received=400)


def test_the_compiled_generator_is_chosen_where_built_else_python_with_a_reason() -> None:
    generator, reason = throughput.choose_generator("compiled")
    if LOADGEN_IMPORT_ERROR:
        assert (generator, reason) == ("python", LOADGEN_IMPORT_ERROR)
    else:
        assert (generator, reason) == ("compiled", "")
    assert throughput.choose_generator("python") == ("python", "")


async def test_a_dead_load_worker_is_reported_with_its_signal() -> None:
    """A worker that crashed (a segfault in the compiled generator, say) is named with what
    ended it, not left as a bare BrokenPipeError or EOFError."""
    workers = throughput.Workers(1, None)
    process = workers.processes[0]
    try:
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.join, 30)
        with pytest.raises(RuntimeError, match="load worker 0 died of SIGKILL"):
            await workers.call("configure", [{}])
    finally:
        await workers.stop()
