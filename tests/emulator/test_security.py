"""Security defaults (issue 18): the token check, the fault API kept to loopback, file:// URIs
confined to ``file_roots``, and the limits on subscriptions and recordings.

Each test drives a real server over real sockets, as a client (or an attacker) would.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

import pytest

from emulator.app import running_emulator
from emulator.transport.client import KurentoClient
from protocol.errors import RpcError
from tests.conftest import make_settings, server_and_client
from tests.emulator.test_access import _refused
from tests.observability.admin_http import http


async def test_access_token_of_any_length_or_alphabet_checked_whole() -> None:
    """A token that shares a prefix with the real one, is longer or shorter, or is not ASCII is
    refused; the right one (percent-encoded, non-ASCII) passes. The comparison is
    ``hmac.compare_digest`` on bytes (constant time for equal lengths, no early exit)."""
    token = "s3cret-ключ"
    async with running_emulator(make_settings(access_token=token)) as server:
        url = server.urls["ws"]
        for wrong in ("s3cret", token + "x", "s3cret-ключа", "S3CRET-КЛЮЧ", "\u00e9" * 11):
            quoted = urllib.parse.quote(wrong)
            assert await _refused(f"{url}?access_token={quoted}") == (
                401,
                "access_token is wrong\n",
            )
        quoted = urllib.parse.quote(token)
        async with await KurentoClient.connect(f"{url}?access_token={quoted}") as client:
            assert await client.ping() == {"value": "pong"}


def _outside_address() -> str | None:
    """A non-loopback IPv4 address of this machine (a client 'from outside'), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("remote", [False, True])
async def test_fault_api_answers_loopback_only_unless_asked(remote: bool) -> None:
    """With the admin listener on every interface (to scrape /metrics from elsewhere), the fault
    API answers 403 to a client outside loopback, unless ``fault_api_remote`` is set; /metrics
    answers both, loopback gets the faults."""
    outside = _outside_address()
    if outside is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    settings = make_settings(
        admin_port=0, admin_host="0.0.0.0", fault_injection=True, fault_api_remote=remote
    )
    async with running_emulator(settings) as server:
        assert server.admin is not None
        port = server.admin.port
        local, far = f"http://127.0.0.1:{port}", f"http://{outside}:{port}"
        assert (await http(local, "/faults"))[0] == 200
        assert (await http(far, "/metrics"))[0] == 200
        status, body = await http(far, "/faults", "POST", {"kind": "ice_blackhole"})
        if remote:
            assert status == 201
        else:
            assert status == 403 and "fault_api_remote" in body
            assert (await http(far, "/restart", "POST"))[0] == 403
            assert (await http(local, "/faults"))[0] == 200


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """A media root with a file in it, and a secret outside it."""
    root, outside = tmp_path / "media", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    (root / "clip.webm").write_bytes(b"not really a clip")
    (outside / "secret.webm").write_bytes(b"secret")
    return root, outside


async def test_file_uris_confined_to_file_roots(roots: tuple[Path, Path]) -> None:
    """Player and recorder file:// URIs outside ``file_roots`` are refused with 40107 naming
    the resolved path and the setting: plainly outside, through ``..``, percent-encoded ``..``,
    and through a symbolic link inside the root; URIs inside the root are taken."""
    root, outside = roots
    (root / "link").symlink_to(outside)
    refused = [
        (outside / "secret.webm").as_uri(),
        f"file://{root}/../private/secret.webm",
        f"file://{root}/%2e%2e/private/secret.webm",
        (root / "link" / "secret.webm").as_uri(),
        "file:///etc/passwd",
    ]
    settings = make_settings(file_roots=f"{root}, /nonexistent-root")
    async with server_and_client(settings) as (_, client):
        pipeline = await client.create("MediaPipeline")
        for uri in refused:
            for kind in ("PlayerEndpoint", "RecorderEndpoint"):
                with pytest.raises(RpcError) as caught:
                    await pipeline.create(kind, uri=uri)
                assert caught.value.code == 40107, uri
                assert "file_roots" in str(caught.value) and "outside" in str(caught.value)
        player = await pipeline.create("PlayerEndpoint", uri=(root / "clip.webm").as_uri())
        recorder = await pipeline.create("RecorderEndpoint", uri=(root / "out.webm").as_uri())
        assert player.id and recorder.id


async def test_recorder_refuses_a_link_planted_after_create(roots: tuple[Path, Path]) -> None:
    """A symbolic link put at the recorder's path after ``create`` does not lead out of the
    roots: ``record`` checks again and answers 40107, and the secret is untouched."""
    root, outside = roots
    settings = make_settings(file_roots=str(root))
    async with server_and_client(settings) as (_, client):
        pipeline = await client.create("MediaPipeline")
        recorder = await pipeline.create("RecorderEndpoint", uri=(root / "later.webm").as_uri())
        os.symlink(outside / "secret.webm", root / "later.webm")
        with pytest.raises(RpcError) as caught:
            await recorder.invoke("record")
        assert caught.value.code == 40107
    assert (outside / "secret.webm").read_bytes() == b"secret"


async def test_file_roots_unset_keeps_kms_behaviour(roots: tuple[Path, Path]) -> None:
    """Without ``file_roots`` any path is taken, as KMS does."""
    _, outside = roots
    async with server_and_client(make_settings()) as (_, client):
        pipeline = await client.create("MediaPipeline")
        await pipeline.create("PlayerEndpoint", uri=(outside / "secret.webm").as_uri())


async def test_max_subscriptions_per_session_answers_40009() -> None:
    """Past ``max_subscriptions_per_session`` subscribe answers 40009 naming the setting; after
    an unsubscribe there is room again; another session has its own count."""
    settings = make_settings(max_subscriptions_per_session=3)
    async with server_and_client(settings) as (server, client):
        pipeline = await client.create("MediaPipeline")
        streams = [await pipeline.subscribe("Error") for _ in range(3)]
        with pytest.raises(RpcError) as caught:
            await pipeline.subscribe("Error")
        assert caught.value.code == 40009
        assert "max_subscriptions_per_session" in str(caught.value)
        await streams[0].close()
        await pipeline.subscribe("Error")
        async with await KurentoClient.connect(server.urls["ws"], reconnect=False) as other:
            own = await other.create("MediaPipeline")
            for _ in range(3):
                await own.subscribe("Error")


async def test_subscription_limit_holds_inside_a_media_worker() -> None:
    """With media workers the subscription limit is enforced by the worker that holds the
    pipeline (per worker, as the README says): the relayed subscribe answers 40009 too."""
    settings = make_settings(max_subscriptions_per_session=2, media_workers=2)
    async with server_and_client(settings) as (_, client):
        pipeline = await client.create("MediaPipeline")
        for _ in range(2):
            await pipeline.subscribe("Error")
        with pytest.raises(RpcError) as caught:
            await pipeline.subscribe("Error")
        assert caught.value.code == 40009
        assert "max_subscriptions_per_session" in str(caught.value)


async def test_subscription_limit_holds_over_every_media_worker() -> None:
    """With media workers the control plane counts the subscriptions of a session on every
    worker: two pipelines on two workers share one ``max_subscriptions_per_session``; an
    unsubscribe, or the release of a pipeline, makes room again."""
    settings = make_settings(max_subscriptions_per_session=2, media_workers=2)
    async with server_and_client(settings) as (_, client):
        first = await client.create("MediaPipeline")
        second = await client.create("MediaPipeline")
        stream = await first.subscribe("Error")
        await second.subscribe("Error")
        for pipeline in (first, second):
            with pytest.raises(RpcError) as caught:
                await pipeline.subscribe("Error")
            assert caught.value.code == 40009
            assert "max_subscriptions_per_session" in str(caught.value)
        await stream.close()
        await second.subscribe("Error")  # the room the unsubscribe made, on the other worker
        await second.release()
        for _ in range(2):
            await first.subscribe("Error")


def _operation(index: int, method: str, **params: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": index, "method": method, "params": params}


async def test_limits_hold_inside_a_transaction_over_every_media_worker() -> None:
    """A transaction's operations count like requests of their own: with two media workers the
    subscriptions and objects a session holds on the other worker leave room for only part of
    the transaction, which stops at the operation past the limit with 40009."""
    settings = make_settings(
        max_subscriptions_per_session=2, max_objects_per_session=3, media_workers=2
    )
    async with server_and_client(settings) as (_, client):
        first = await client.create("MediaPipeline")
        await first.subscribe("Error")
        reply = await client.call(
            "transaction",
            {
                "operations": [
                    _operation(0, "create", type="MediaPipeline", constructorParams={}),
                    _operation(1, "subscribe", object="newref:0", type="Error"),
                    _operation(2, "subscribe", object="newref:0", type="Error"),
                ]
            },
        )
        answers = reply["value"]
        assert ["result" in answer for answer in answers] == [True, True, False]
        assert answers[2]["error"]["code"] == 40009
        assert "max_subscriptions_per_session" in answers[2]["error"]["message"]
        second = answers[0]["result"]["value"]
        reply = await client.call(
            "transaction",
            {
                "operations": [
                    _operation(
                        0, "create", type="PassThrough", constructorParams={"mediaPipeline": second}
                    ),
                    _operation(
                        1, "create", type="PassThrough", constructorParams={"mediaPipeline": second}
                    ),
                ]
            },
        )
        answers = reply["value"]
        assert ["result" in answer for answer in answers] == [True, False]
        assert answers[1]["error"]["code"] == 40009
        assert "max_objects_per_session" in answers[1]["error"]["message"]
