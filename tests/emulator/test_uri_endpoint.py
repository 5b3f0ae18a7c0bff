"""The UriEndpoint base shared by PlayerEndpoint and RecorderEndpoint: URI, state, defaultPath."""

from __future__ import annotations

import pytest

from emulator.objects.uri_endpoint import file_path, resolve_uri
from protocol.errors import RpcError
from tests.conftest import make_settings, server_and_client


def test_uris_without_a_scheme_are_under_default_path() -> None:
    """As KMS: ``clip.webm`` is ``<defaultPath>/clip.webm``; schemes it serves pass as given."""
    assert (
        resolve_uri("clip.webm", "file:///var/lib/kurento/") == "file:///var/lib/kurento/clip.webm"
    )
    assert resolve_uri("http://127.0.0.1:9/a.mp4", "file:///x") == "http://127.0.0.1:9/a.mp4"
    assert file_path("file:///tmp/a%20b.webm") is not None
    assert str(file_path("file:///tmp/a%20b.webm")) == "/tmp/a b.webm"
    assert file_path("rtsp://cam/stream") is None


async def test_creation_resolves_the_uri_and_starts_stopped() -> None:
    """``getUri`` answers the absolute URI (defaultPath from the settings); ``getState`` STOP."""
    settings = make_settings(default_path="file:///srv/media/")
    async with server_and_client(settings) as (_, client):
        pipeline = await client.create("MediaPipeline")
        player = await pipeline.create("PlayerEndpoint", uri="hold-music.wav")
        assert await player.invoke("getUri") == "file:///srv/media/hold-music.wav"
        assert await player.invoke("getState") == "STOP"


async def test_unusable_uri_is_refused_with_40600() -> None:
    """An empty URI or an unknown scheme is refused at creation, with what to use instead."""
    async with server_and_client(make_settings()) as (_, client):
        pipeline = await client.create("MediaPipeline")
        with pytest.raises(RpcError) as caught:
            await pipeline.create("RecorderEndpoint", uri="ftp://host/file.webm")
        assert caught.value.code == 40600 and "file, http, https, rtsp" in str(caught.value)
