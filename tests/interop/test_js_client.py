"""Interop with the official npm client kurento-client 7.3.0, run by Node."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import av
import numpy as np

from emulator.app import App, running_emulator
from emulator.transport.tls import self_signed_pem
from protocol.sdp import SessionDescription
from tests.conftest import make_settings, restart_port
from tests.interop.node_client import NodeScenario
from tests.media.clips import GREEN, make_clip, qr_image, solid_png
from tests.ports import free_port_range


async def test_js_client_basic_flow(server: App) -> None:
    """Connect (strict module check), getInfo, pipeline, elements, events, tags, release."""
    async with NodeScenario.run(server.urls["ws"], "basic") as node:
        await node.step("connected")
        info = await node.step("info")
        assert set(info["modules"]) >= {"core", "elements", "filters"}
        assert info["version"] == "7.3.0"
        created = await node.step("created")
        event = await node.step("element-connected")
        assert (event["source"], event["sink"]) == (created["source"], created["sink"])
        assert event["mediaType"] == "VIDEO" and event["timestampMillis"].isdigit()
        tags = await node.step("tags")
        assert tags["value"] == "7"
        assert [(t["key"], t["value"]) for t in tags["tags"]] == [("room", "7")]
        sinks = await node.step("sink-connections")
        assert sinks["sinks"] == [{"sink": created["sink"], "type": "VIDEO"}]
        missing = await node.step("missing-tag")
        assert missing["error"]["code"] == 40110
        pipelines = await node.step("pipelines")
        assert created["pipeline"] in pipelines["ids"]
        await node.step("released")
        after = await node.step("after-release")
        assert after["error"]["code"] == 40101
        assert await node.finish() == 0


async def test_js_client_over_wss_trusting_the_certificate(tmp_path: Path) -> None:
    """The official client over ``wss://``: Node trusts the server's certificate (the kind the
    server generates, here written to a file and given as both), and the basic flow runs."""
    pem = tmp_path / "server.pem"
    pem.write_bytes(self_signed_pem(["localhost", "127.0.0.1"]))
    settings = make_settings(port=None, secure_port=0, certificate=pem)
    async with (
        running_emulator(settings) as server,
        NodeScenario.run(server.urls["wss"], "basic", {"NODE_EXTRA_CA_CERTS": str(pem)}) as node,
    ):
        await node.step("connected")
        info = await node.step("info")
        assert info["version"] == "7.3.0"
        await node.step("released")
        assert await node.finish() == 0


async def test_js_client_reconnects_after_server_restart() -> None:
    """After a restart the client reconnects, learns its session is gone, and rebuilds."""
    async with running_emulator(make_settings(port=restart_port())) as first:
        port = first.port("ws")
        async with NodeScenario.run(first.urls["ws"], "reconnect") as node:
            ready = await node.step("ready")
            await first.stop()
            async with running_emulator(make_settings(port=port)) as second:
                await node.command("restarted")
                reconnected = await node.step("reconnected")
                assert reconnected["sameSession"] is False
                old = await node.step("old-pipeline")
                assert old["error"]["code"] == 40101
                rebuilt = await node.step("rebuilt")
                assert rebuilt["pipeline"] != ready["pipeline"]
                assert rebuilt["pipeline"] in [p.id for p in second.media_set.pipelines()]
                assert await node.finish() == 0


async def test_js_client_keeps_session_across_socket_drop(server: App) -> None:
    """A dropped socket reconnects with connect(sessionId) and keeps the session's objects."""
    async with NodeScenario.run(server.urls["ws"], "reconnect") as node:
        ready = await node.step("ready")
        for link in list(server.listener.links):
            await link.websocket.close(1001, "test drops the socket")
        await node.command("dropped")
        reconnected = await node.step("reconnected")
        assert reconnected["sameSession"] is True
        old = await node.step("old-pipeline")
        assert old["error"] is None
        assert ready["pipeline"] in [p.id for p in server.media_set.pipelines()]
        await node.finish()


PBX_OFFER = (
    "v=0\r\no=pbx 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
)
"""A PBX whose port nothing listens on: ``port`` is reserved for the test (tests/ports.py), so
the endpoint's RTCP reaches no other test's peer."""


async def test_js_client_builds_the_pbx_leg(server: App) -> None:
    """RtpEndpoint with an SDES complex type offers SRTP; a plain one answers a PBX's SDP."""
    async with NodeScenario.run(server.urls["ws"], "pbx") as node:
        secure = SessionDescription.parse((await node.step("secure-offer"))["sdp"])
        assert {m.proto for m in secure.media} == {"RTP/SAVP"}
        assert all(
            m.cryptos and m.cryptos[0].suite == "AES_CM_128_HMAC_SHA1_80" for m in secure.media
        )
        pbx = PBX_OFFER.format(port=free_port_range(2).low)
        await node.command(json.dumps({"sdp": pbx}))
        answer = SessionDescription.parse((await node.step("answer"))["sdp"])
        (audio,) = [m for m in answer.media if not m.rejected]
        assert audio.proto == "RTP/AVP" and [c.name for c in audio.codecs][:1] == ["PCMA"]
        state = await node.step("state")
        assert state["connectionState"] == "CONNECTED"
        assert state["transcoding"] is False and state["stats"]
        assert await node.finish() == 0


async def ffmpeg(*args: str) -> None:
    """Run ffmpeg (quiet) and expect it to succeed."""
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()


async def test_js_client_plays_a_file(server: App, tmp_path: Path) -> None:
    """The official client plays a 1 s Ogg/Opus file: getVideoInfo, play, EndOfStream (with its
    type), getPosition near the end, state START; a bad scheme is refused with 40600."""
    clip = tmp_path / "tone.ogg"
    await ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "libopus", str(clip))
    async with NodeScenario.run(server.urls["ws"], "player") as node:
        await node.command(clip.as_uri())
        ended = await node.step("ended")
        assert ended["type"] == "EndOfStream" and ended["state"] == "START"
        assert ended["info"]["isSeekable"] is True and 900 <= ended["info"]["duration"] <= 1100
        assert ended["position"] >= 900 and ended["states"] == ["START"]
        assert (await node.step("bad-uri"))["error"]["code"] == 40600
        assert await node.finish() == 0


async def test_js_client_records_what_a_player_plays(server: App, tmp_path: Path) -> None:
    """The official client connects a PlayerEndpoint (a 2 s VP8/Opus WebM) to a WEBM
    RecorderEndpoint, records, plays, waits for EndOfStream and calls stopAndWait: the file
    holds both streams and the clip's duration; Recording and Stopped were raised."""
    clip, target = tmp_path / "clip.webm", tmp_path / "recorded.webm"
    await ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=2",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
        "-c:v", "libvpx", "-g", "30", "-b:v", "500k", "-c:a", "libopus", str(clip),
    )  # fmt: skip
    async with NodeScenario.run(server.urls["ws"], "player-recorder") as node:
        await node.command(json.dumps({"clip": clip.as_uri(), "target": target.as_uri()}))
        assert (await node.step("ended"))["state"] == "START"
        stopped = await node.step("stopped")
        assert stopped == {"step": "stopped", "state": "STOP", "events": ["Recording", "Stopped"]}
        assert await node.finish() == 0
    process = await asyncio.create_subprocess_exec(
        "ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(target),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await process.communicate()
    info = json.loads(output)
    assert {s["codec_type"]: s["codec_name"] for s in info["streams"]} == {
        "video": "vp8",
        "audio": "opus",
    }
    assert abs(float(info["format"]["duration"]) - 2.0) < 0.3, info["format"]


async def test_js_client_transactions(server: App, tmp_path: Path) -> None:
    """The official client's transactions against one server (``js_transactions``)."""
    await js_transactions(server.urls["ws"], tmp_path)


async def js_transactions(url: str, tmp_path: Path) -> None:
    """The official client's transactions: a pipeline, a player and a recorder committed at
    once (their ids known after the commit only), record and play committed together
    (Recording follows), an operation on a released player failing with 40101 in a commit that
    succeeds (its object "not found", as is a connect to it), a rollback refusing later use;
    the recording is a file."""
    clip, target = tmp_path / "clip.webm", tmp_path / "recorded.webm"
    green = np.zeros((120, 160, 3), dtype=np.uint8)
    green[:, :] = GREEN[::-1]  # BGR
    make_clip(clip, [green], seconds=3, tone=440)
    async with NodeScenario.run(url, "transactions") as node:
        await node.command(json.dumps({"clip": clip.as_uri(), "target": target.as_uri()}))
        built = await node.step("built")
        assert built["before"] is None and built["commited"] is True
        assert built["player"].startswith(built["pipeline"] + "/")
        assert (await node.step("recording"))["state"] == "START"
        refused = await node.step("refused")
        for error in (refused["playError"], refused["connectError"]):
            assert error is not None and error["code"] == 40101, refused
            assert " not found" in error["message"]
        rolled = await node.step("rolled-back")
        assert rolled["rollbackError"] == "TransactionRollbackException"
        assert await node.finish() == 0
    assert target.stat().st_size > 0


async def test_js_client_drives_the_filters(server: App, tmp_path: Path) -> None:
    """The official client chains a player, ZBarFilter, GStreamerFilter (videoflip),
    FaceOverlayFilter (the magic mirror's offsets) and ImageOverlayFilter into a recorder
    (addImage is not called: this client version mangles its parameters, see scenario.js):
    CodeFound reaches it with codeType and value, setElementProperty and getCommand answer,
    the flipped video flows, and an unsupported command is refused with 40006."""
    clip = make_clip(tmp_path / "qr.webm", [qr_image("kurento")], 10)
    image = solid_png(tmp_path / "hat.png", GREEN)
    async with NodeScenario.run(server.urls["ws"], "filters") as node:
        await node.command(json.dumps({"clip": clip, "image": image.as_uri()}))
        code = await node.step("code")
        assert code == {
            "step": "code",
            "type": "CodeFound",
            "codeType": "QR-Code",
            "value": "kurento",
        }
        mirror = await node.step("mirror")
        assert mirror["command"] == "videoflip method=horizontal-flip" and mirror["flowing"]
        refused = (await node.step("refused"))["error"]
        assert refused["code"] == 40006 and "'facedetect'" in refused["message"]
        assert await node.finish() == 0


async def test_js_client_records_a_call_through_a_composite(server: App, tmp_path: Path) -> None:
    """The official client records two parties (players of a 440 Hz and a 660 Hz tone) through a
    Composite's third port: the file holds both tones; Mixer.connect/disconnect and
    AlphaBlending.setMaster/setPortProperties are accepted as the client sends them."""
    clips = [tmp_path / "a.ogg", tmp_path / "b.ogg"]
    for clip, tone in zip(clips, (440, 660), strict=True):
        await ffmpeg("-f", "lavfi", "-i", f"sine=frequency={tone}:duration=2", "-c:a", "libopus",
                     str(clip))  # fmt: skip
    target = tmp_path / "call.webm"
    async with NodeScenario.run(server.urls["ws"], "hubs") as node:
        await node.command(
            json.dumps({"clips": [c.as_uri() for c in clips], "target": target.as_uri()})
        )
        await node.step("recorded")
        hubs = await node.step("hubs")
        assert hubs["videoDisconnect"]["code"] == 40005
        assert await node.finish() == 0
    with av.open(str(target)) as container:
        rate = container.streams.audio[0].rate
        samples = np.concatenate(
            [f.to_ndarray().reshape(len(f.layout.channels), -1, order="F")[0]
             if f.format.is_packed else f.to_ndarray()[0]
             for f in container.decode(audio=0)]
        )  # fmt: skip
    middle = samples[len(samples) // 2 - rate // 2 : len(samples) // 2 + rate // 2]
    spectrum = np.abs(np.fft.rfft(middle * np.hanning(len(middle))))
    bins = np.fft.rfftfreq(len(middle), 1 / rate)
    level = {f: spectrum[(bins > f - 15) & (bins < f + 15)].max() for f in (440, 660, 880)}
    assert min(level[440], level[660]) > 10 * level[880], level
