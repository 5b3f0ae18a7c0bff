"""pcap capture of RtpEndpoints, read back by Debian's tshark: decrypted SRTP, both directions."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from emulator.transport.client import KurentoClient, RemoteObject
from protocol.sdp import SessionDescription
from tests.conftest import make_settings, server_and_client
from tests.media.rtp_peers import RtpSender, peer_sdp, udp_peer

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark missing (make rtp-deps)")
AUDIO_ONLY = {"__module__": "kurento", "__type__": "OfferOptions", "offerToReceiveVideo": False}
SDES = {"__module__": "kurento", "__type__": "SDES", "crypto": "AES_128_CM_HMAC_SHA1_80"}
PAYLOAD = b"\x11" * 160


async def rtp_streams(path: Path) -> Counter[tuple[str, str, str]]:
    """(source port, payload type, payload) of each RTP packet tshark finds, counted."""
    rows = await tshark(path, "rtp", "rtp", "udp.srcport", "rtp.p_type", "rtp.payload")
    return Counter((r[0], r[1], r[2].replace(":", "")) for r in rows)


async def tshark(path: Path, heuristic: str, display: str, *fields: str) -> list[list[str]]:
    """The fields of the packets of a capture that match a display filter."""
    assert TSHARK is not None
    args = [arg for name in fields for arg in ("-e", name)]
    process = await asyncio.create_subprocess_exec(
        TSHARK,
        "-r",
        str(path),
        "--enable-heuristic",
        f"{heuristic}_udp",
        # before the dissectors Wireshark registers by port: the block may hold 12000 or 13400
        "-o",
        "udp.try_heuristic_first:TRUE",
        "-Y",
        display,
        "-T",
        "fields",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode(errors="replace")
    return [line.split("\t") for line in out.decode().splitlines() if line.strip()]


def captures(folder: Path) -> list[Path]:
    """The pcap files in a folder, sorted."""
    return sorted(folder.rglob("*.pcap"))


def _port(sdp: str) -> int:
    return SessionDescription.parse(sdp).media[0].port


async def _srtp_call(
    client: KurentoClient, count: int
) -> tuple[RemoteObject, RemoteObject, RemoteObject, int, int]:
    """phone A -> edge_in -> near ==SRTP over loopback==> far -> edge_out -> phone B."""
    pipeline = await client.create("MediaPipeline")
    edge_in = await pipeline.create("RtpEndpoint")
    near = await pipeline.create("RtpEndpoint", crypto=SDES)
    far = await pipeline.create("RtpEndpoint", crypto=SDES)
    edge_out = await pipeline.create("RtpEndpoint")
    await near.invoke("setName", name="pbx-trunk-1")
    await far.invoke("addTag", key="capture", value="true")
    await edge_in.connect(near)
    await far.connect(edge_out)
    offer = await near.invoke("generateOffer", options=AUDIO_ONLY)
    answer = await far.invoke("processOffer", offer=offer)
    await near.invoke("processAnswer", answer=answer)
    async with udp_peer() as phone_a, udp_peer() as phone_b:
        answer_in = await edge_in.invoke("processOffer", offer=peer_sdp(phone_a.port))
        await edge_out.invoke("processOffer", offer=peer_sdp(phone_b.port))
        sender = RtpSender(0)
        for _ in range(count):
            phone_a.send(sender.packet(PAYLOAD), ("127.0.0.1", _port(answer_in)))
            await phone_b.next_rtp()
    await pipeline.release()
    return pipeline, near, far, _port(offer), _port(answer)


async def test_capture_holds_decrypted_rtp_of_both_legs(tmp_path: Path) -> None:
    """The name filter captures one SRTP endpoint, the tag the other; tshark finds the clear
    RTP each sent and received, with the real ports, in files named by pipeline and element."""
    settings = make_settings(
        network_interfaces="lo",
        capture="^pbx-",
        capture_dir=tmp_path,
    )
    async with server_and_client(settings) as (_, client):
        pipeline, near, far, near_port, far_port = await _srtp_call(client, 12)
    files = captures(tmp_path)
    assert len(files) == 2
    folder = tmp_path / re.sub(r"[^A-Za-z0-9_.-]", "_", pipeline.id)
    near_file, far_file = (
        folder / (re.sub(r"[^A-Za-z0-9_.-]", "_", e.id.split("/", 1)[1]) + ".pcap")
        for e in (near, far)
    )
    assert files == sorted([near_file, far_file])
    # near sent 12 clear packets from its port; far received the same 12 from near's port
    assert (await rtp_streams(near_file))[(str(near_port), "0", PAYLOAD.hex())] == 12
    assert (await rtp_streams(far_file))[(str(near_port), "0", PAYLOAD.hex())] == 12
    assert far_port != near_port
    # each endpoint's RTCP BYE at release is in its own file, sent from its port (rtcp-mux)
    for path, port in ((near_file, near_port), (far_file, far_port)):
        byes = await tshark(path, "rtcp", "rtcp.pt == 203", "udp.srcport")
        assert [str(port)] in byes


async def test_capture_stops_growing_at_the_disk_budget(tmp_path: Path) -> None:
    """With a budget for five packets the file stops growing and stays a readable pcap (an RTCP
    report from the endpoint's timer may take one of the places)."""
    record = 16 + 20 + 8 + 12 + 160
    settings = make_settings(
        network_interfaces="lo",
        capture_dir=tmp_path,
        capture_max_bytes=24 + 5 * record + 10,
    )
    async with server_and_client(settings) as (_, client):
        await _srtp_call(client, 12)
    (capture,) = captures(tmp_path)
    assert 1 <= sum((await rtp_streams(capture)).values()) <= 5
    assert capture.stat().st_size <= settings.capture_max_bytes
