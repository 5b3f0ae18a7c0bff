"""MediaElement and the simple elements built on it (KMD core ``MediaElement``, ``PassThrough``).

Connection semantics follow ``MediaElementImpl.cpp``: without ``mediaType`` a connect links AUDIO,
VIDEO and DATA; a sink pad has one source, so connecting a new source first disconnects the old
one; ``ElementConnected``/``ElementDisconnected`` are raised on the source; disconnecting a link
that does not exist is not an error.

Who feeds whom is the pipeline's graph (``media_pipeline.ConnectionGraph``); an element reads its
own row of the forwarding table per packet and keeps no links of its own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, ClassVar, TypeAlias

from emulator.media.codecs.coders import EncoderBitrates
from emulator.media.session.datapath import RECORDING
from emulator.objects.media_object import MediaObject
from emulator.objects.media_pipeline import (
    MEDIA_TYPES,
    Connection,
    ConnectionGraph,
    MediaPipeline,
    write_dot,
)
from protocol.errors import ConnectError
from protocol.sdp import Codec

ERROR_CODES = {
    "RESOURCE_ERROR_OPEN": 6,
    "RESOURCE_ERROR_READ": 9,
    "RESOURCE_ERROR_WRITE": 10,
    "RESOURCE_ERROR_NO_SPACE_LEFT": 14,
    "STREAM_ERROR_TYPE_NOT_FOUND": 4,
    "STREAM_ERROR_DECODE": 7,
    "STREAM_ERROR_DEMUX": 9,
    "STREAM_ERROR_FAILED": 1,
    "UNEXPECTED_ELEMENT_ERROR": 1,
}
"""GStreamer's ``GstResourceError``/``GstStreamError`` numbers that KMS reports as ``errorCode``
with each ``Error`` type (KMS's own example: RESOURCE_ERROR_OPEN, 6, a file it cannot write)."""
GST_CORE_ERROR_NEGOTIATION = 7
"""``GstCoreError`` NEGOTIATION: what KMS's agnosticbin posts when no decoder bridges two
formats."""


class MediaElement(MediaObject):
    """An element that sends and receives media through connections."""

    # Annotated, so that mypy can match MediaElement to the graph's GraphNode in this very module.
    TYPE: ClassVar[str] = "MediaElement"
    STATS_TYPE = "ElementStats"
    FEEDS_SINKS_FROM: ClassVar[str] = "out"
    """Which of this element's flows its sinks receive: its output (``out``), or, for an SDP
    endpoint, what its remote peer sends it (``in``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.services.settings
        self.properties.update(
            encoderBitrate=settings.encoder_bitrate,
            minEncoderBitrate=settings.min_encoder_bitrate,
            maxEncoderBitrate=settings.max_encoder_bitrate,
        )
        self.flowing_in: dict[tuple[str, str], bool] = {}
        self.flowing_out: dict[tuple[str, str], bool] = {}
        self.transcoding: dict[tuple[str, str], bool] = {}
        self._transcoding_for: dict[tuple[str, str], set[str]] = {}
        self._transcoded_by: dict[str, MediaElement] = {}
        self._busy = False
        self.audio_caps: dict[str, Any] | None = None
        self.video_caps: dict[str, Any] | None = None
        pipeline = self.pipeline
        assert isinstance(pipeline, MediaPipeline), f"{self.TYPE} outside a pipeline"
        self.owner: MediaPipeline[MediaElement] = pipeline
        """The pipeline, owner of this element's links."""
        self.graph: ConnectionGraph[MediaElement] = pipeline.graph
        self._sinks: Mapping[str, tuple[MediaElement, ...]] = self.graph.add(self)
        """The graph's row for this element (not a copy): one dict read per forwarded packet."""

    # -- connections ---------------------------------------------------------------------------

    def connect(
        self,
        sink: MediaElement,
        media_type: str | None = None,
        source_media_description: str | None = None,
        sink_media_description: str | None = None,
    ) -> None:
        """Send this element's media to ``sink`` (every media type when none is given).

        Raises:
            ConnectError: 40004 when the elements are in different pipelines.
        """
        if sink.owner is not self.owner:
            raise ConnectError("Media elements do not share pipeline")
        source_desc = source_media_description or "default"
        sink_desc = sink_media_description or "default"
        for kind in [media_type] if media_type else MEDIA_TYPES:
            current = self.graph.source_of(sink, kind, sink_desc)
            if current is not None:
                if current.source is self and current.source_description == source_desc:
                    continue
                current.source.drop_link(current)
            link = Connection(self, sink, kind, source_desc, sink_desc)
            self.graph.link(link)
            self.log.info("= connected %s -> %s (%s)", self.id, sink.id, kind)
            self.on_link_added(link)
            self.emit(
                "ElementConnected",
                sink=sink,
                mediaType=kind,
                sourceMediaDescription=source_desc,
                sinkMediaDescription=sink_desc,
            )

    def disconnect(
        self,
        sink: MediaElement,
        media_type: str | None = None,
        source_media_description: str | None = None,
        sink_media_description: str | None = None,
    ) -> None:
        """Stop sending to ``sink``; links that do not exist are ignored."""
        source_desc = source_media_description or "default"
        sink_desc = sink_media_description or "default"
        for kind in [media_type] if media_type else MEDIA_TYPES:
            link = self.graph.source_of(sink, kind, sink_desc)
            if link is not None and link.source is self and link.source_description == source_desc:
                self.drop_link(link)

    def drop_link(self, link: ElementLink) -> None:
        """Remove one of this element's outgoing links and raise ``ElementDisconnected``."""
        self.graph.unlink(link)
        self.log.info("= disconnected %s -> %s (%s)", self.id, link.sink.id, link.media_type)
        link.sink.on_source_removed(link)
        if link.sink.flowing_in.get((link.media_type, "default")):
            link.sink.source_stopped_flowing(link.media_type)
        self.emit(
            "ElementDisconnected",
            sink=link.sink,
            mediaType=link.media_type,
            sourceMediaDescription=link.source_description,
            sinkMediaDescription=link.sink_description,
        )

    def on_link_added(self, link: ElementLink) -> None:
        """A new sink: its video starts with a keyframe."""
        if link.media_type == "VIDEO":
            link.sink.video_source_changed()

    def on_source_removed(self, link: ElementLink) -> None:
        """The link feeding this element was removed (endpoints stop transcoding for it)."""

    # -- transcoding -----------------------------------------------------------------------------

    def transcoding_changed(
        self, media_type: str, active: bool, bin_name: str, reason: str
    ) -> None:
        """This sink starts or stops receiving transcoded media. As in KMS, where the source
        element's agnosticbin transcodes, the element feeding the sink reports it."""
        if active:
            link = self.graph.source_of(self, media_type)
            source = link.source if link is not None else self
            self._transcoded_by[media_type] = source
        else:
            found = self._transcoded_by.pop(media_type, None)
            if found is None:
                return
            source = found
        source.transcoding_for(self, media_type, bin_name, active)

    def transcoding_for(self, sink: MediaElement, media_type: str, bin_name: str, on: bool) -> None:
        """Count the sinks this element transcodes for: MediaTranscodingStateChanged when the
        first starts and when the last stops."""
        key = (media_type, bin_name)
        sinks = self._transcoding_for.setdefault(key, set())
        before = bool(sinks)
        if on:
            sinks.add(sink.id)
        else:
            sinks.discard(sink.id)
        if before == bool(sinks):
            return
        self.transcoding[key] = bool(sinks)
        state = "TRANSCODING" if sinks else "NOT_TRANSCODING"
        self.log.info("= media transcoding %s (%s): %s", media_type, bin_name, state)
        self.emit(
            "MediaTranscodingStateChanged", state=state, binName=bin_name, mediaType=media_type
        )

    # -- media path --------------------------------------------------------------------------

    def forward(self, media_type: str, packet: Any) -> None:
        """Hand a media packet to every sink of that type."""
        sinks = self._sinks.get(media_type, ())
        fanout = RECORDING.current
        if fanout is not None:  # the compiled forwarder learns routes from this packet's journey
            fanout.reached += len(sinks)
        for sink in sinks:
            sink.receive_media(media_type, packet)

    def has_sinks(self, media_type: str) -> bool:
        """Whether any element receives this media type from this one."""
        return media_type in self._sinks

    def receive_media(self, media_type: str, packet: Any) -> None:
        """A packet from the source of this element: elements without media of their own
        pass it on (PassThrough, HubPort)."""
        if self._busy:
            return  # a cycle of pass-through elements: each packet crosses it once
        self.mark_flow("in", media_type, True)
        if media_type in self._sinks:
            self.mark_flow("out", media_type, True)
        self._busy = True
        try:
            self.forward(media_type, packet)
        finally:
            self._busy = False

    def raise_error(self, error_type: str, description: str, code: int | None = None) -> None:
        """KMS's ``Error`` event on this element: ``type`` names the error (``errorCode`` is its
        GStreamer number, ``code`` when the type does not tell it), ``description`` says what
        failed; nothing else is disturbed."""
        self.log.warning("! %s: %s", error_type, description)
        self.emit(
            "Error",
            description=description,
            errorCode=code if code is not None else ERROR_CODES.get(error_type, 1),
            type=error_type,
        )

    def decode_failed(self, media_type: str, reason: str) -> None:
        """The decoder transcoding this sink's media refused what the source sent. In KMS the
        decoder is in the source element's agnosticbin; GStreamer's decoders post
        ``STREAM/DECODE`` ("Could not decode stream."), raised as ``Error`` STREAM_ERROR_DECODE
        (code 7) of that element by MediaElementImpl::processBusMessage."""
        source = self._feeding(media_type)
        source.raise_error(
            "STREAM_ERROR_DECODE",
            f"Error code {ERROR_CODES['STREAM_ERROR_DECODE']}: Could not decode stream., "
            f"source: decoder, element: {source.id}, debug info: {reason}",
        )

    def _feeding(self, media_type: str) -> MediaElement:
        """The element whose media of that type this one receives (itself when none)."""
        link = self.graph.source_of(self, media_type)
        return link.source if link is not None else self

    def transcoding_refused(self, media_type: str, reason: str) -> None:
        """This sink's media cannot be transcoded for it. KMS's agnosticbin, in the element
        feeding the sink, posts ``GST_ELEMENT_WARNING (CORE, NEGOTIATION, "Formats are not
        compatible")``, which MediaElementImpl::processBusMessage raises as an ``Error`` of that
        element: type UNEXPECTED_ELEMENT_ERROR (CORE is not a domain it names), code 7."""
        source = self._feeding(media_type)
        source.raise_error(
            "UNEXPECTED_ELEMENT_ERROR",
            f"Error code {GST_CORE_ERROR_NEGOTIATION}: Formats are not compatible, source: "
            f"agnosticbin2, element: {source.id}, debug info: {reason}",
            GST_CORE_ERROR_NEGOTIATION,
        )

    def video_source_changed(self) -> None:
        """The video this element receives comes from another source now: what it sends on
        must start with a keyframe. Elements without media of their own tell their sinks;
        endpoints wait for the keyframe, asking their source until it has been sent."""
        self.video_sinks_restarted()

    def video_sinks_restarted(self) -> None:
        """Tell every VIDEO sink that its video comes from another source now."""
        if self._busy:
            return  # a cycle of pass-through elements
        self._busy = True
        try:
            for sink in self._sinks.get("VIDEO", ()):
                sink.video_source_changed()
        finally:
            self._busy = False

    def end_of_stream(self) -> None:
        """This element's media has ended (a player or an upload reached its end): every sink
        of its links learns it, once, as GStreamer's EOS travels downstream in KMS."""
        if self._busy:
            return  # a cycle of pass-through elements
        self._busy = True
        try:
            sinks = {id(sink): sink for links in self._sinks.values() for sink in links}
            for sink in sinks.values():
                sink.source_ended()
        finally:
            self._busy = False

    def source_ended(self) -> None:
        """The element feeding this one ended its media: elements without media of their own
        (PassThrough, filters) pass it on; endpoints ignore it unless it ends their work (a
        RecorderEndpoint with ``stopOnEndOfStream``)."""
        self.end_of_stream()

    def produce_keyframe(self, media_type: str) -> None:
        """A sink wants a keyframe of what this element sends: elements without media of their
        own ask their source; endpoints ask their remote peer."""
        self.ask_keyframe(media_type)

    def ask_keyframe(self, media_type: str) -> None:
        """Ask whoever feeds this element for a keyframe (a PLI towards the producer)."""
        link = self.graph.source_of(self, media_type)
        if link is None or self._busy:
            return
        self._busy = True
        try:
            link.source.produce_keyframe(media_type)
        finally:
            self._busy = False

    def encoder_bitrates(self) -> EncoderBitrates:
        """This element's ``encoderBitrate``, ``minEncoderBitrate`` and ``maxEncoderBitrate``:
        what its video encoders (a filter's, the transcoders of what it sends) aim at."""
        props = self.properties
        return EncoderBitrates(
            int(props["encoderBitrate"]),
            int(props["minEncoderBitrate"]),
            int(props["maxEncoderBitrate"]),
        )

    def transcoding_bitrates(self, media_type: str) -> EncoderBitrates:
        """The bounds that media transcoded for this sink is encoded within: those of the
        element feeding it (in KMS, that element's agnosticbin encodes)."""
        link = self.graph.source_of(self, media_type)
        return (link.source if link is not None else self).encoder_bitrates()

    def set_encoder_bitrate(self, encoder_bitrate: int) -> None:
        """KMD setEncoderBitrate: from now on, encoders of this element's output aim at it."""
        self._set_encoding("encoderBitrate", encoder_bitrate)

    def set_min_encoder_bitrate(self, min_encoder_bitrate: int) -> None:
        """KMD setMinEncoderBitrate: the floor of the receivers' estimates."""
        self._set_encoding("minEncoderBitrate", min_encoder_bitrate)

    def set_max_encoder_bitrate(self, max_encoder_bitrate: int) -> None:
        """KMD setMaxEncoderBitrate: the ceiling of the receivers' estimates (0: none)."""
        self._set_encoding("maxEncoderBitrate", max_encoder_bitrate)

    def _set_encoding(self, name: str, value: int) -> None:
        self.properties[name] = value
        for sink in self._sinks.get("VIDEO", ()):
            sink.source_encoding_changed()

    def source_encoding_changed(self) -> None:
        """The encoderBitrate bounds of the element feeding this one changed (an endpoint's
        transcoders follow them)."""

    def video_send_limit(self) -> int | None:
        """The video bitrate (bps) the receivers behind this element take, None if unknown.

        Elements without a remote peer of their own pass on the lowest of their sinks' figures.
        """
        if self._busy:
            return None
        self._busy = True
        try:
            limits = self.sink_video_limits()
        finally:
            self._busy = False
        return min(limits) if limits else None

    def sink_video_limits(self) -> list[int]:
        """The video bitrate each VIDEO sink can take (sinks that do not know are left out)."""
        limits = (sink.video_send_limit() for sink in self._sinks.get("VIDEO", ()))
        return [limit for limit in limits if limit is not None]

    def codecs_taken(self, media_type: str) -> list[Codec]:
        """The codecs of ``media_type`` that the receivers behind this element take as they are,
        by preference (``[]``: any, or not known yet), for elements that encode their output
        once per codec (mixing hubs, filters: each uses the first it encodes). An element
        without a remote peer of its own passes on its sinks' (``codecs_taken_by_sinks``)."""
        if self._busy:
            return []  # a cycle of pass-through elements
        self._busy = True
        try:
            return self.codecs_taken_by_sinks(media_type)
        finally:
            self._busy = False

    def codecs_taken_by_sinks(self, media_type: str) -> list[Codec]:
        """``codecs_taken`` of every sink of ``media_type``, one after another."""
        sinks = self._sinks.get(media_type, ())
        return [codec for sink in sinks for codec in sink.codecs_taken(media_type)]

    def mark_flow(self, direction: str, media_type: str, flowing: bool) -> None:
        """Record media flow and raise MediaFlowIn/OutStateChanged on a change."""
        states = self.flowing_in if direction == "in" else self.flowing_out
        key = (media_type, "default")
        if states.get(key, False) == flowing:
            return
        states[key] = flowing
        event = "MediaFlowInStateChanged" if direction == "in" else "MediaFlowOutStateChanged"
        state = "FLOWING" if flowing else "NOT_FLOWING"
        self.log.info("= media flow %s %s: %s", direction, media_type, state)
        self.emit(event, state=state, padName="default", mediaType=media_type)
        if not flowing and direction == self.FEEDS_SINKS_FROM:
            for sink in list(self._sinks.get(media_type, ())):
                sink.source_stopped_flowing(media_type)

    def source_stopped_flowing(self, media_type: str) -> None:
        """What this element received of ``media_type`` stopped (its source's flow ended, or
        the link was removed). An element without media of its own (PassThrough, filters) stops
        sending it too, and tells its sinks in turn: KMS's pad probes see no more buffers on
        either side. The Python path carries every packet through such elements, so their flows
        start again with the next packet."""
        self.mark_flow("in", media_type, False)
        self.mark_flow("out", media_type, False)

    def stop_flowing_out(self) -> None:
        """This element's own media stopped (a source paused, ended or failed): raise
        MediaFlowOutStateChanged NOT_FLOWING at once for what was flowing."""
        for media_type in ("AUDIO", "VIDEO"):
            if self.flowing_out.get((media_type, "default")):
                self.mark_flow("out", media_type, False)

    async def on_release(self) -> None:
        """Drop every link in and out of this element, and leave the graph."""
        for link in self.graph.links_from(self):
            self.drop_link(link)
        for link in self.graph.links_into(self):
            link.source.drop_link(link)
        self.graph.remove(self)
        await super().on_release()

    def get_source_connections(
        self, media_type: str | None = None, description: str | None = None
    ) -> list[dict[str, Any]]:
        """Links feeding this element, filtered by type and by this element's pad description."""
        return [
            link.to_kmd()
            for link in self.graph.links_into(self, media_type)
            if description is None or link.sink_description == description
        ]

    def get_sink_connections(
        self, media_type: str | None = None, description: str | None = None
    ) -> list[dict[str, Any]]:
        """Links leaving this element, filtered by type and by this element's pad description."""
        return [
            link.to_kmd()
            for link in self.graph.links_from(self, media_type)
            if description is None or link.source_description == description
        ]

    # -- state queries -------------------------------------------------------------------------

    def is_media_flowing_in(self, media_type: str, sink_media_description: str = "default") -> bool:
        """Whether media of that type arrives at the pad (from real packet flow)."""
        return self.flowing_in.get((media_type, sink_media_description), False)

    def is_media_flowing_out(
        self, media_type: str, source_media_description: str = "default"
    ) -> bool:
        """Whether media of that type leaves the pad (from real packet flow)."""
        return self.flowing_out.get((media_type, source_media_description), False)

    def is_media_transcoding(self, media_type: str, bin_name: str = "default") -> bool:
        """Whether media of that type is being decoded and re-encoded (by any bin for
        ``default``)."""
        if bin_name == "default":
            return any(on for (kind, _), on in self.transcoding.items() if kind == media_type)
        return self.transcoding.get((media_type, bin_name), False)

    def set_audio_format(self, caps: dict[str, Any]) -> None:
        """Force the audio format this element outputs (an ``AudioCaps``)."""
        self.audio_caps = caps

    def set_video_format(self, caps: dict[str, Any]) -> None:
        """Force the video format this element outputs (a ``VideoCaps``)."""
        self.video_caps = caps

    def get_stats(self, media_type: str | None = None) -> dict[str, Any]:
        """Stats keyed by id: the element's own entry (and RTP streams in endpoints)."""
        return {self.id: self.element_stats()}

    def element_stats(self) -> dict[str, Any]:
        """This element's ``ElementStats`` entry."""
        return {
            "__module__": "kurento",
            "__type__": self.STATS_TYPE,
            "id": self.id,
            "inputLatency": [],
            "timestampMillis": int(time.time() * 1000),
            "type": "element",
        }

    def get_gstreamer_dot(self, details: str | None = None) -> str:
        """A DOT graph of this element and its links."""
        lines = [f'digraph "{self.id}" {{', "  rankdir=LR;"]
        lines.append(f'  "{self.id}" [label="{self.TYPE}\\n{self.name}", shape=box];')
        for link in [*self.graph.links_from(self), *self.graph.links_into(self)]:
            lines.append(f'  "{link.source.id}" -> "{link.sink.id}" [label="{link.media_type}"];')
        lines.append("}")
        return "\n".join(lines) + "\n"

    def dump_gstreamer_dot(self, details: str | None = None) -> None:
        """Write the DOT graph as KMS does (see ``write_dot``)."""
        write_dot(self, self.get_gstreamer_dot(details))


ElementLink: TypeAlias = Connection[MediaElement]
"""A link between two elements of a pipeline."""


class PassThrough(MediaElement):
    """Forwards what it receives to its sinks unchanged."""

    TYPE = "PassThrough"


class Endpoint(MediaElement):
    """Abstract: an element at the edge of the pipeline."""

    TYPE = "Endpoint"
    STATS_TYPE = "EndpointStats"

    def source_ended(self) -> None:
        """An endpoint's own media does not end with what it receives (a WebRtcEndpoint keeps
        sending its peer's media): nothing is passed on."""

    def source_stopped_flowing(self, media_type: str) -> None:
        """What an endpoint sends on comes from its own media (the remote peer, the file): it
        does not stop with what it receives. An SDP endpoint's flow to its peer ends by its
        session's own clock (``media_flow_timeout`` without a packet sent)."""

    def own_media_ended(self) -> None:
        """The media this endpoint produces is over (a player or an upload at its end): flows
        out stop, KMD ``EndOfStream`` is raised and the sinks learn it through the pipeline."""
        self.log.info("= end of stream")
        self.stop_flowing_out()
        self.emit("EndOfStream")
        self.end_of_stream()

    def element_stats(self) -> dict[str, Any]:
        """``EndpointStats``: the element entry plus end-to-end latency."""
        stats = super().element_stats()
        stats.update(E2ELatency=[], type="endpoint")
        return stats


class Filter(MediaElement):
    """Abstract: an element that processes media."""

    TYPE = "Filter"
