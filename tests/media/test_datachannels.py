"""Data channels: opened by either side, messages flow through connected elements."""

from __future__ import annotations

import pytest

from emulator.transport.client import KurentoClient
from protocol.errors import MediaObjectOperationNotSupported
from tests.media.peers import client_peer, negotiate


async def test_data_channel_loopback_echoes_messages(media_client: KurentoClient) -> None:
    """A channel opened by the peer raises DataChannelOpened; its messages come back."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint", useDataChannels=True)
    await endpoint.connect(endpoint)
    opened = await endpoint.subscribe("DataChannelOpened")
    async with client_peer(audio=True, video=False, data=True) as peer:
        await negotiate(endpoint, peer)
        event = await opened.get(timeout=15)
        assert isinstance(event["channelId"], int)
        assert peer.channel is not None
        await peer.wait_for(lambda p: p.channel is not None and p.channel.readyState == "open")
        peer.channel.send("hello kurento")
        await peer.wait_for(lambda p: "hello kurento" in p.messages)


async def test_server_created_channel_and_close(media_client: KurentoClient) -> None:
    """createDataChannel opens a channel towards the peer; closeDataChannel closes it."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint", useDataChannels=True)
    opened = await endpoint.subscribe("DataChannelOpened")
    closed = await endpoint.subscribe("DataChannelClosed")
    connected = await endpoint.subscribe("ConnectionStateChanged")
    async with client_peer(audio=True, video=False, data=True) as peer:
        await negotiate(endpoint, peer)
        await connected.get(timeout=15)
        await opened.get(timeout=15)
        await endpoint.invoke("createDataChannel", label="from-server")
        await peer.wait_for(lambda p: any(c.label == "from-server" for c in p.remote_channels))
        ids = {(await opened.get(timeout=10))["channelId"] for _ in range(3)}
        server_channel = next(c for c in peer.remote_channels if c.label == "from-server")
        assert server_channel.id in ids
        await endpoint.invoke("closeDataChannel", channelId=server_channel.id)
        assert (await closed.get(timeout=10))["channelId"] == server_channel.id


async def test_data_channels_need_use_data_channels(media_client: KurentoClient) -> None:
    """Without useDataChannels, createDataChannel answers 40111."""
    pipeline = await media_client.create("MediaPipeline")
    endpoint = await pipeline.create("WebRtcEndpoint")
    with pytest.raises(MediaObjectOperationNotSupported, match="Data channels are not supported"):
        await endpoint.invoke("createDataChannel", label="x")
