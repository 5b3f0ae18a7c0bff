"""Kurento classes, one module per KMD class family; ``FACTORIES`` maps type names to classes."""

from __future__ import annotations

from emulator.objects.filters import (
    FaceOverlayFilter,
    GStreamerFilter,
    ImageOverlayFilter,
    OpenCVFilter,
    ZBarFilter,
)
from emulator.objects.http_post_endpoint import HttpEndpoint, HttpPostEndpoint
from emulator.objects.hub import (
    AlphaBlending,
    Composite,
    Dispatcher,
    DispatcherOneToMany,
    Hub,
    HubPort,
    Mixer,
)
from emulator.objects.media_element import Endpoint, Filter, MediaElement, PassThrough
from emulator.objects.media_object import MediaObject
from emulator.objects.media_pipeline import MediaPipeline
from emulator.objects.player_endpoint import PlayerEndpoint
from emulator.objects.recorder_endpoint import RecorderEndpoint
from emulator.objects.rtp_endpoint import RtpEndpoint
from emulator.objects.sdp_endpoint import BaseRtpEndpoint, SdpEndpoint, SessionEndpoint
from emulator.objects.server_manager import ServerManager
from emulator.objects.uri_endpoint import UriEndpoint
from emulator.objects.webrtc_endpoint import WebRtcEndpoint

CLASSES: dict[str, type[MediaObject]] = {
    cls.TYPE: cls
    for cls in (
        MediaObject,
        MediaPipeline,
        ServerManager,
        MediaElement,
        PassThrough,
        Endpoint,
        Filter,
        SessionEndpoint,
        SdpEndpoint,
        BaseRtpEndpoint,
        WebRtcEndpoint,
        RtpEndpoint,
        UriEndpoint,
        PlayerEndpoint,
        RecorderEndpoint,
        HttpEndpoint,
        HttpPostEndpoint,
        Hub,
        HubPort,
        Composite,
        Mixer,
        AlphaBlending,
        Dispatcher,
        DispatcherOneToMany,
        OpenCVFilter,
        GStreamerFilter,
        FaceOverlayFilter,
        ImageOverlayFilter,
        ZBarFilter,
    )
}
"""Every KMD class by name, abstract ones included (their NOT_YET texts explain missing parts)."""
