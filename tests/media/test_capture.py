"""Media capture: decrypted RTP/RTCP of an endpoint in a pcap file that tshark decodes as RTP."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from emulator.app import running_emulator
from emulator.media.lab.capture import CaptureBudget, PcapWriter, udp_datagram
from emulator.transport.client import KurentoClient, RemoteObject
from tests.conftest import make_settings
from tests.media.peers import client_peer, negotiate, nominating_socket

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="make media-deps installs tshark")


@contextlib.asynccontextmanager
async def _capturing_client(folder: Path, **settings: Any) -> AsyncIterator[KurentoClient]:
    options = make_settings(
        network_interfaces="lo",
        capture_dir=folder,
        **settings,
    )
    async with (
        running_emulator(options) as server,
        await KurentoClient.connect(server.urls["ws"], reconnect=False) as client,
    ):
        yield client


def _pcaps(folder: Path) -> list[Path]:
    return list(folder.rglob("*.pcap"))


async def _tshark_fields(
    path: Path, port: int, protocol: str = "rtp", field: str = "rtp.ssrc"
) -> Counter[str]:
    """Packets per value of ``field``, as tshark decodes the file (the port read as RTP)."""
    assert TSHARK is not None
    process = await asyncio.create_subprocess_exec(
        TSHARK, "-r", str(path), "-d", f"udp.port=={port},rtp", "-Y", protocol,
        "-T", "fields", "-e", field,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return Counter(line for line in out.decode().split() if line)


async def _hello_world(endpoint: RemoteObject, frames: int) -> dict[str, Any]:
    """Loopback media until the peer got ``frames`` video frames; the server's stats then."""
    await endpoint.connect(endpoint)
    async with client_peer() as peer:
        await negotiate(endpoint, peer)
        await peer.wait_for(lambda p: p.frames.get("video", 0) > frames)
        stats: dict[str, Any] = await endpoint.invoke("getStats")
    return stats


def _pair_port(stats: dict[str, Any]) -> int:
    (local,) = [s for s in stats.values() if s["type"] == "localcandidate"]
    port: int = local["portNumber"]
    return port


@needs_tshark
async def test_tagged_endpoint_capture_decodes_as_rtp(tmp_path: Path) -> None:
    """``addTag capture true``: both directions of every stream, named by pipeline and element."""
    async with _capturing_client(tmp_path) as client:
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        await endpoint.invoke("addTag", key="capture", value="true")
        stats = await _hello_world(endpoint, 60)  # two seconds: RTCP reports
        await endpoint.release()
    files = _pcaps(tmp_path)
    assert [f.parent.name for f in files] == [pipeline.id.replace("/", "_")]
    assert files[0].name == endpoint.id.split("/")[1] + ".pcap"
    counts = await _tshark_fields(files[0], _pair_port(stats))
    rtcp_types = await _tshark_fields(files[0], _pair_port(stats), "rtcp", "rtcp.pt")
    assert {"200", "201"} & set(rtcp_types), rtcp_types  # sender or receiver reports
    streams = {s["ssrc"]: s for s in stats.values() if s["type"] in ("inboundrtp", "outboundrtp")}
    for ssrc, entry in streams.items():
        if entry.get("isRemote"):
            continue
        decoded = counts[f"0x{int(ssrc):08x}"]
        field = "packetsReceived" if entry["type"] == "inboundrtp" else "packetsSent"
        assert decoded >= entry[field] > 0, (entry["type"], ssrc, decoded)


@needs_tshark
async def test_capture_follows_a_later_nominated_pair(tmp_path: Path) -> None:
    """A pair the peer nominates after ICE completed becomes the selected one, and the packets
    captured from then on carry its addresses."""
    async with _capturing_client(tmp_path) as client:
        pipeline = await client.create("MediaPipeline")
        endpoint = await pipeline.create("WebRtcEndpoint")
        await endpoint.invoke("addTag", key="capture", value="true")
        await endpoint.connect(endpoint)
        async with client_peer() as peer:
            await negotiate(endpoint, peer)
            await peer.wait_for(lambda p: p.frames.get("video", 0) > 3)
            selected = await endpoint.subscribe("NewCandidatePairSelected")
            async with nominating_socket(peer, answers=True) as nominator:
                nominator.nominate()
                await selected.get(timeout=10)
                async with asyncio.timeout(10):
                    await nominator.media.wait()
        await endpoint.release()
    (capture,) = _pcaps(tmp_path)
    destinations = await _tshark_fields(capture, nominator.port, "udp", "udp.dstport")
    assert destinations[str(nominator.port)] > 0, destinations


@needs_tshark
async def test_server_filter_selects_endpoints_by_name(tmp_path: Path) -> None:
    """``capture`` as a regular expression: only the endpoint whose name matches is captured."""
    async with _capturing_client(tmp_path, capture="^pbx-") as client:
        pipeline = await client.create("MediaPipeline")
        chosen = await pipeline.create("WebRtcEndpoint")
        await chosen.invoke("setName", name="pbx-leg-1")
        other = await pipeline.create("WebRtcEndpoint")
        await _hello_world(chosen, 3)
        await _hello_world(other, 3)
        await pipeline.release()
    files = _pcaps(tmp_path)
    assert len(files) == 1 and chosen.id.split("/")[1][:8] in files[0].name


async def test_disk_budget_bounds_the_files(tmp_path: Path) -> None:
    """Past ``capture_max_bytes`` packets are counted as dropped and the file stays bounded."""
    budget = CaptureBudget(limit=2000)
    writer = PcapWriter(tmp_path / "p" / "e.pcap", budget)
    for _ in range(100):
        writer.write(b"\x80" + bytes(171), ("127.0.0.1", 5000), ("127.0.0.1", 6000))
    writer.close()
    assert writer.dropped > 0 and writer.packets > 0
    assert (tmp_path / "p" / "e.pcap").stat().st_size <= 2000


def test_ipv6_and_mixed_addresses_get_an_ipv6_header() -> None:
    """An IPv6 pair is wrapped in an IPv6 header (version 6, next header UDP)."""
    datagram = udp_datagram(b"rtp", ("::1", 5000), ("127.0.0.1", 6000))
    assert datagram[0] >> 4 == 6 and datagram[6] == 17 and datagram.endswith(b"rtp")
    assert len(udp_datagram(b"rtp", ("10.0.0.1", 1), ("10.0.0.2", 2))) == 20 + 8 + 3
