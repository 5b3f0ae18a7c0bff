"""The ``core`` module of Kurento 7.3.0: media objects, pipelines, hubs, SDP endpoints.

Written for kurento-emulator; ``tests/protocol/test_registry_vs_kmd.py`` checks every signature
against the official ``core.kmd.json``. Each doc is the first sentence of the KMD's, in plain
text.
"""

from __future__ import annotations

from protocol.types import (
    ComplexType,
    EnumType,
    EventType,
    Method,
    Module,
    Opt,
    P,
    Property,
    RegisterType,
    RemoteClass,
)

CLASSES: tuple[RemoteClass, ...] = (
    RemoteClass(
        "BaseRtpEndpoint",
        "core",
        extends="SdpEndpoint",
        abstract=True,
        doc="Base class for the implementation of RTP-based communication endpoints.",
        properties=(
            Property(
                "minVideoRecvBandwidth",
                "int",
                doc="Minimum inbound bitrate requested by this endpoint.",
            ),
            Property(
                "minVideoSendBandwidth",
                "int",
                doc="Minimum outbound bitrate sent by this endpoint.",
            ),
            Property(
                "maxVideoSendBandwidth",
                "int",
                doc="Maximum outbound bitrate sent by this endpoint.",
            ),
            Property("mediaState", "MediaState", read_only=True, doc="Media flow state."),
            Property("connectionState", "ConnectionState", read_only=True, doc="Connection state."),
            Property("mtu", "int", doc="Maximum Transmission Unit (MTU) used for RTP."),
            Property(
                "rembParams",
                "RembParams",
                doc="Advanced parameters to configure the congestion control algorithm.",
            ),
        ),
        methods=(
            Method(
                "requestKeyframe",
                doc=(
                    "Force sending a new keyframe request to the upstream elements in the Kurento "
                    "Pipeline, towards the associated producer."
                ),
            ),
        ),
        events=("MediaStateChanged", "ConnectionStateChanged"),
    ),
    RemoteClass(
        "Endpoint",
        "core",
        extends="MediaElement",
        abstract=True,
        doc="Base interface for all end points.",
    ),
    RemoteClass(
        "Filter",
        "core",
        extends="MediaElement",
        abstract=True,
        doc="Base interface for all filters.",
    ),
    RemoteClass(
        "Hub",
        "core",
        extends="MediaObject",
        abstract=True,
        doc="A Hub is a routing MediaObject.",
        methods=(
            Method(
                "getGstreamerDot",
                params=(Opt("details", "GstreamerDotDetails", doc="Details of graph."),),
                returns="String",
                doc=(
                    "Returns a string in dot (graphviz) format that represents the gstreamer "
                    "elements inside the pipeline."
                ),
                return_doc="The dot graph.",
            ),
            Method(
                "dumpGstreamerDot",
                params=(Opt("details", "GstreamerDotDetails", doc="Details of graph."),),
                doc=(
                    "If GST_DEBUG_DUMP_DOT_DIR environment variable is defined dumps in that "
                    "directoy a file with the GStreamer dot of the Hub."
                ),
            ),
        ),
    ),
    RemoteClass(
        "HubPort",
        "core",
        extends="MediaElement",
        doc="This MediaElement specifies a connection with a Hub.",
        constructor=(P("hub", "Hub", doc="Hub to which this port belongs."),),
        constructor_doc="Creates a HubPort for the given Hub.",
    ),
    RemoteClass(
        "MediaElement",
        "core",
        extends="MediaObject",
        abstract=True,
        doc=(
            "The basic building block of the media server, that can be interconnected inside a "
            "pipeline."
        ),
        properties=(
            Property("encoderBitrate", "int", doc="Target video bitrate for media transcoding."),
            Property(
                "minEncoderBitrate", "int", doc="Minimum video bitrate for media transcoding."
            ),
            Property(
                "maxEncoderBitrate", "int", doc="Maximum video bitrate for media transcoding."
            ),
        ),
        methods=(
            Method(
                "getSourceConnections",
                params=(
                    Opt(
                        "mediaType",
                        "MediaType",
                        doc="One of MediaType.AUDIO, MediaType.VIDEO or MediaType.DATA.",
                    ),
                    Opt("description", "String", doc="A textual description of the media source."),
                ),
                returns="ElementConnectionData[]",
                doc="Gets information about the sink pads of this media element.",
                return_doc=(
                    "A list of the connections information that are sending media to this element."
                ),
            ),
            Method(
                "getSinkConnections",
                params=(
                    Opt(
                        "mediaType",
                        "MediaType",
                        doc="One of MediaType.AUDIO, MediaType.VIDEO or MediaType.DATA.",
                    ),
                    Opt("description", "String", doc="A textual description of the media source."),
                ),
                returns="ElementConnectionData[]",
                doc="Gets information about the source pads of this media element.",
                return_doc=(
                    "A list of the connections information that are receiving media from this "
                    "element."
                ),
            ),
            Method(
                "connect",
                params=(
                    P(
                        "sink",
                        "MediaElement",
                        doc="the target MediaElement that will receive media.",
                    ),
                    Opt(
                        "mediaType",
                        "MediaType",
                        doc="the MediaType of the pads that will be connected.",
                    ),
                    Opt(
                        "sourceMediaDescription",
                        "String",
                        doc="A textual description of the media source.",
                    ),
                    Opt(
                        "sinkMediaDescription",
                        "String",
                        doc="A textual description of the media source.",
                    ),
                ),
                doc="Connects two elements, with the media flowing from left to right.",
            ),
            Method(
                "disconnect",
                params=(
                    P(
                        "sink",
                        "MediaElement",
                        doc="the target MediaElement that will stop receiving media.",
                    ),
                    Opt(
                        "mediaType",
                        "MediaType",
                        doc="the MediaType of the pads that will be connected.",
                    ),
                    Opt(
                        "sourceMediaDescription",
                        "String",
                        doc="A textual description of the media source.",
                    ),
                    Opt(
                        "sinkMediaDescription",
                        "String",
                        doc="A textual description of the media source.",
                    ),
                ),
                doc="Disconnects two media elements.",
            ),
            Method(
                "setAudioFormat",
                params=(P("caps", "AudioCaps", doc="The format for the stream of audio."),),
                doc="Set the type of data for the audio stream.",
            ),
            Method(
                "setVideoFormat",
                params=(P("caps", "VideoCaps", doc="The format for the stream of video."),),
                doc="Set the type of data for the video stream.",
            ),
            Method(
                "dumpGstreamerDot",
                params=(Opt("details", "GstreamerDotDetails", doc="Details of graph."),),
                doc=(
                    "If GST_DEBUG_DUMP_DOT_DIR environment variable is defined dumps in that "
                    "directoy a file with the GStreamer dot of the Media Element."
                ),
            ),
            Method(
                "getGstreamerDot",
                params=(Opt("details", "GstreamerDotDetails", doc="Details of graph."),),
                returns="String",
                doc="Return a .dot file describing the topology of the media element.",
                return_doc="The dot graph.",
            ),
            Method(
                "getStats",
                params=(
                    Opt("mediaType", "MediaType", doc="One of MediaType.AUDIO or MediaType.VIDEO."),
                ),
                returns="Stats<>",
                doc="Gets the statistics related to an endpoint.",
                return_doc="Delivers a successful result in the form of a RTC stats report.",
            ),
            Method(
                "isMediaFlowingIn",
                params=(
                    P("mediaType", "MediaType", doc="One of MediaType.AUDIO or MediaType.VIDEO."),
                    Opt(
                        "sinkMediaDescription", "String", "default", doc="Description of the sink."
                    ),
                ),
                returns="boolean",
                doc=(
                    "This method indicates whether the media element is receiving media of a "
                    "certain type."
                ),
                return_doc="TRUE if there is media, FALSE in other case.",
            ),
            Method(
                "isMediaFlowingOut",
                params=(
                    P("mediaType", "MediaType", doc="One of MediaType.AUDIO or MediaType.VIDEO."),
                    Opt(
                        "sourceMediaDescription",
                        "String",
                        "default",
                        doc="Description of the source.",
                    ),
                ),
                returns="boolean",
                doc=(
                    "This method indicates whether the media element is emitting media of a "
                    "certain type."
                ),
                return_doc="TRUE if there is media, FALSE in other case.",
            ),
            Method(
                "isMediaTranscoding",
                params=(
                    P("mediaType", "MediaType", doc="One of MediaType.AUDIO or MediaType.VIDEO."),
                    Opt(
                        "binName",
                        "String",
                        "default",
                        doc=(
                            "Internal name of the processing bin, as previously given by "
                            "MediaTranscodingStateChanged."
                        ),
                    ),
                ),
                returns="boolean",
                doc=(
                    "Indicates whether this media element is actively transcoding between input "
                    "and output pads."
                ),
                return_doc="TRUE if media is being transcoded, FALSE otherwise.",
            ),
        ),
        events=(
            "ElementConnected",
            "ElementDisconnected",
            "MediaFlowOutStateChanged",
            "MediaFlowInStateChanged",
            "MediaTranscodingStateChanged",
        ),
    ),
    RemoteClass(
        "MediaObject",
        "core",
        abstract=True,
        doc="Base interface used to manage capabilities common to all Kurento elements.",
        properties=(
            Property(
                "mediaPipeline",
                "MediaPipeline",
                final=True,
                doc="MediaPipeline to which this MediaObject belongs.",
            ),
            Property("parent", "MediaObject", final=True, doc="Parent of this MediaObject."),
            Property("id", "String", final=True, doc="Unique identifier of this MediaObject."),
            Property(
                "children", "MediaObject[]", read_only=True, doc="Children of this MediaObject."
            ),
            Property("name", "String", doc="This MediaObject's name."),
            Property(
                "sendTagsInEvents",
                "boolean",
                doc="Flag activating or deactivating sending the element's tags in fired events.",
            ),
            Property(
                "creationTime",
                "int",
                final=True,
                doc="MediaObject creation time in seconds since Epoch.",
            ),
        ),
        methods=(
            Method(
                "addTag",
                params=(
                    P("key", "String", doc="Tag name."),
                    P("value", "String", doc="Value associated to this tag."),
                ),
                doc="Adds a new tag to this MediaObject.",
            ),
            Method(
                "removeTag",
                params=(P("key", "String", doc="Tag name to be removed."),),
                doc="Removes an existing tag.",
            ),
            Method(
                "getTag",
                params=(P("key", "String", doc="Tag key."),),
                returns="String",
                doc=(
                    "Returns the value of given tag, or MEDIA_OBJECT_TAG_KEY_NOT_FOUND if tag is "
                    "not defined."
                ),
                return_doc="The value associated to the given key.",
            ),
            Method(
                "getTags",
                returns="Tag[]",
                doc="Returns all tags attached to this MediaObject.",
                return_doc=(
                    "An array containing all key-value pairs associated with this MediaObject."
                ),
            ),
        ),
        events=("Error",),
    ),
    RemoteClass(
        "MediaPipeline",
        "core",
        extends="MediaObject",
        doc="A pipeline is a container for a collection of MediaElements.",
        constructor=(),
        constructor_doc="Create a MediaPipeline.",
        properties=(
            Property(
                "latencyStats",
                "boolean",
                doc="If statistics about pipeline latency are enabled for all mediaElements.",
            ),
        ),
        methods=(
            Method(
                "getGstreamerDot",
                params=(Opt("details", "GstreamerDotDetails", doc="Details of graph."),),
                returns="String",
                doc=(
                    "Returns a string in dot (graphviz) format that represents the gstreamer "
                    "elements inside the pipeline."
                ),
                return_doc="The dot graph.",
            ),
            Method(
                "dumpGstreamerDot",
                params=(Opt("details", "GstreamerDotDetails", doc="Details of graph."),),
                doc=(
                    "If GST_DEBUG_DUMP_DOT_DIR environment variable is defined dumps in that "
                    "directoy a file with the GStreamer dot of the pipeline."
                ),
            ),
        ),
    ),
    RemoteClass(
        "PassThrough",
        "core",
        extends="MediaElement",
        doc="This MediaElement that just passes media through.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the element belongs.",
            ),
        ),
        constructor_doc="Builder for the PassThrough.",
    ),
    RemoteClass(
        "SdpEndpoint",
        "core",
        extends="SessionEndpoint",
        abstract=True,
        doc=(
            "Interface implemented by Endpoints that require an SDP Offer/Answer negotiation in "
            "order to configure a media session."
        ),
        properties=(
            Property(
                "maxAudioRecvBandwidth",
                "int",
                doc="Maximum inbound bitrate requested by this endpoint.",
            ),
            Property(
                "maxVideoRecvBandwidth",
                "int",
                doc="Maximum inbound bitrate requested by this endpoint.",
            ),
        ),
        methods=(
            Method(
                "generateOffer",
                params=(
                    Opt(
                        "options",
                        "OfferOptions",
                        doc="An OfferOptions providing options requested for the offer.",
                    ),
                ),
                returns="String",
                doc="Generates an SDP offer with media capabilities of the Endpoint.",
                return_doc="The SDP offer.",
            ),
            Method(
                "processOffer",
                params=(P("offer", "String", doc="SessionSpec offer from the remote User Agent."),),
                returns="String",
                doc=(
                    "Processes SDP offer of the remote peer, and generates an SDP answer based on "
                    "the endpoint's capabilities."
                ),
                return_doc="The chosen configuration from the ones stated in the SDP offer.",
            ),
            Method(
                "processAnswer",
                params=(
                    P("answer", "String", doc="SessionSpec answer from the remote User Agent."),
                ),
                returns="String",
                doc="Generates an SDP offer with media capabilities of the Endpoint.",
                return_doc="Updated SDP offer, based on the answer received.",
            ),
            Method(
                "getLocalSessionDescriptor",
                returns="String",
                doc="Returns the local SDP.",
                return_doc="The last agreed SessionSpec.",
            ),
            Method(
                "getRemoteSessionDescriptor",
                returns="String",
                doc="This method returns the remote SDP.",
                return_doc="The last agreed User Agent session description.",
            ),
        ),
    ),
    RemoteClass(
        "ServerManager",
        "core",
        extends="MediaObject",
        abstract=True,
        doc="This is a standalone object for managing the MediaServer.",
        properties=(
            Property(
                "info",
                "ServerInfo",
                read_only=True,
                doc="Server information, version, modules, factories, etc.",
            ),
            Property(
                "pipelines",
                "MediaPipeline[]",
                read_only=True,
                doc="All the pipelines available in the server.",
            ),
            Property(
                "sessions", "String[]", read_only=True, doc="All active sessions in the server."
            ),
            Property("metadata", "String", read_only=True, doc="Metadata stored in the server."),
        ),
        methods=(
            Method(
                "getKmd",
                params=(P("moduleName", "String", doc="Name of the module to get its kmd file."),),
                returns="String",
                doc="Returns the kmd associated to a module.",
                return_doc="The kmd file.",
            ),
            Method(
                "getCpuCount",
                returns="int",
                doc="Number of CPU cores that the media server can use.",
                return_doc="Number of CPU cores available for the media server.",
            ),
            Method(
                "getUsedCpu",
                params=(
                    P(
                        "interval",
                        "int",
                        doc="Time to measure the average CPU usage, in milliseconds.",
                    ),
                ),
                returns="float",
                doc="Average CPU usage of the server.",
                return_doc="CPU usage %.",
            ),
            Method(
                "getUsedMemory",
                returns="int64",
                doc="Returns the amount of memory that the server is using, in KiB.",
                return_doc="Used memory, in KiB.",
            ),
        ),
        events=("ObjectCreated", "ObjectDestroyed"),
    ),
    RemoteClass(
        "SessionEndpoint",
        "core",
        extends="Endpoint",
        abstract=True,
        doc=(
            "All networked Endpoints that require to manage connection sessions with remote peers "
            "implement this interface."
        ),
        events=("MediaSessionTerminated", "MediaSessionStarted"),
    ),
    RemoteClass(
        "UriEndpoint",
        "core",
        extends="Endpoint",
        abstract=True,
        doc="Interface for endpoints the require a URI to work.",
        properties=(
            Property("uri", "String", final=True, doc="The uri for this endpoint."),
            Property("state", "UriEndpointState", read_only=True, doc="State of the endpoint."),
        ),
        methods=(Method("pause", doc="Pauses the feed."), Method("stop", doc="Stops the feed.")),
        events=("UriEndpointStateChanged",),
    ),
)

COMPLEX_TYPES: tuple[ComplexType, ...] = (
    EnumType("UriEndpointState", "core", ("STOP", "START", "PAUSE"), doc="State of the endpoint."),
    RegisterType(
        "ServerInfo",
        "core",
        doc="Description of the media server.",
        properties=(
            P("version", "String", doc="MediaServer version."),
            P("modules", "ModuleInfo[]", doc="Descriptor of all modules loaded by the server."),
            P("type", "ServerType", doc="Describes the type of media server."),
            P(
                "capabilities",
                "String[]",
                doc="Describes the capabilities that this server supports.",
            ),
        ),
    ),
    EnumType(
        "ServerType",
        "core",
        ("KMS", "KCS"),
        doc="Indicates if the server is a real media server or a proxy.",
    ),
    EnumType(
        "GstreamerDotDetails",
        "core",
        (
            "SHOW_MEDIA_TYPE",
            "SHOW_CAPS_DETAILS",
            "SHOW_NON_DEFAULT_PARAMS",
            "SHOW_STATES",
            "SHOW_FULL_PARAMS",
            "SHOW_ALL",
            "SHOW_VERBOSE",
        ),
        doc="Details of gstreamer dot graphs.",
    ),
    RegisterType(
        "ModuleInfo",
        "core",
        doc="Description of a loaded modules.",
        properties=(
            P("version", "String", doc="Module version."),
            P("name", "String", doc="Module name."),
            P("generationTime", "String", doc="Time that this module was generated."),
            P("factories", "String[]", doc="Module available factories."),
        ),
    ),
    EnumType("MediaState", "core", ("DISCONNECTED", "CONNECTED"), doc="State of the media."),
    EnumType(
        "MediaFlowState", "core", ("FLOWING", "NOT_FLOWING"), doc="Flowing state of the media."
    ),
    EnumType(
        "MediaTranscodingState",
        "core",
        ("TRANSCODING", "NOT_TRANSCODING"),
        doc="Transcoding state for a media.",
    ),
    EnumType(
        "ConnectionState", "core", ("DISCONNECTED", "CONNECTED"), doc="State of the connection."
    ),
    EnumType(
        "MediaType", "core", ("AUDIO", "DATA", "VIDEO"), doc="Type of media stream to be exchanged."
    ),
    EnumType(
        "FilterType", "core", ("AUDIO", "AUTODETECT", "VIDEO"), doc="Type of filter to be created."
    ),
    EnumType(
        "VideoCodec",
        "core",
        ("H265", "AV1", "VP9", "VP8", "H264", "RAW"),
        doc="Codec used for transmission of video.",
    ),
    EnumType(
        "AudioCodec",
        "core",
        ("OPUS", "PCMU", "PCMA", "RAW"),
        doc="Codec used for transmission of audio.",
    ),
    RegisterType(
        "Fraction",
        "core",
        doc="Type that represents a fraction of an integer numerator over an integer denominator.",
        properties=(
            P("numerator", "int", doc="the numerator of the fraction."),
            P("denominator", "int", doc="the denominator of the fraction."),
        ),
    ),
    RegisterType(
        "AudioCaps",
        "core",
        doc="Format for audio media.",
        properties=(
            P("codec", "AudioCodec", doc="Audio codec."),
            P("bitrate", "int", doc="Bitrate."),
        ),
    ),
    RegisterType(
        "VideoCaps",
        "core",
        doc="Format for video media.",
        properties=(
            P("codec", "VideoCodec", doc="Video codec."),
            P("framerate", "Fraction", doc="Framerate."),
        ),
    ),
    RegisterType(
        "ElementConnectionData",
        "core",
        properties=(
            P("source", "MediaElement", doc="The source element in the connection."),
            P("sink", "MediaElement", doc="The sink element in the connection."),
            P("type", "MediaType", doc="MediaType of the connection."),
            P("sourceDescription", "String", doc="Description of source media."),
            P("sinkDescription", "String", doc="Description of sink media."),
        ),
    ),
    RegisterType(
        "Tag",
        "core",
        doc="Pair key-value with info about a MediaObject.",
        properties=(P("key", "String", doc="Tag key."), P("value", "String", doc="Tag Value.")),
    ),
    EnumType(
        "StatsType",
        "core",
        (
            "inboundrtp",
            "outboundrtp",
            "session",
            "datachannel",
            "track",
            "transport",
            "candidatepair",
            "localcandidate",
            "remotecandidate",
            "element",
            "endpoint",
        ),
        doc="The type of the object.",
    ),
    RegisterType(
        "MediaLatencyStat",
        "core",
        doc="A dictionary that represents the stats gathered.",
        properties=(
            P("name", "String", doc="The identifier of the media stream."),
            P("type", "MediaType", doc="Type of media stream."),
            P(
                "avg",
                "double",
                doc="The average time that buffers take to get on the input pad of this element.",
            ),
        ),
    ),
    RegisterType(
        "Stats",
        "core",
        doc="A dictionary that represents the stats gathered.",
        properties=(
            P(
                "id",
                "String",
                doc=(
                    "A unique id that is associated with the object that was inspected to produce "
                    "this Stats object."
                ),
            ),
            P("type", "StatsType", doc="The type of this object."),
            P("timestampMillis", "int64", doc="The timestamp associated with this event."),
        ),
    ),
    RegisterType(
        "ElementStats",
        "core",
        extends="Stats",
        doc="A dictionary that represents the stats gathered in the media element.",
        properties=(
            P(
                "inputLatency",
                "MediaLatencyStat[]",
                doc=(
                    "The average time that buffers take to get on the input pads of this element "
                    "in nano seconds."
                ),
            ),
        ),
    ),
    RegisterType(
        "EndpointStats",
        "core",
        extends="ElementStats",
        doc="A dictionary that represents the stats gathered in the endpoint element.",
        properties=(
            P(
                "E2ELatency",
                "MediaLatencyStat[]",
                doc=(
                    "The average end to end latency for each media stream measured in nano seconds."
                ),
            ),
        ),
    ),
    RegisterType(
        "RTCStats",
        "core",
        extends="Stats",
        doc="An RTCStats dictionary represents the stats gathered.",
        properties=(),
    ),
    RegisterType(
        "RTCRTPStreamStats",
        "core",
        extends="RTCStats",
        doc="Statistics for the RTP stream.",
        properties=(
            P("ssrc", "String", doc="The synchronized source SSRC."),
            P(
                "associateStatsId",
                "String",
                doc=(
                    "The associateStatsId is used for looking up the corresponding (local/remote) "
                    "RTCStats object for a given SSRC."
                ),
            ),
            P(
                "isRemote",
                "boolean",
                doc=(
                    "false indicates that the statistics are measured locally, while true "
                    "indicates that the measurements were done at the remote endpoint and reported "
                    "in an RTCP RR/XR."
                ),
            ),
            P("mediaTrackId", "String", doc="Track identifier."),
            P(
                "transportId",
                "String",
                doc=(
                    "It is a unique identifier that is associated to the object that was inspected "
                    "to produce the RTCTransportStats associated with this RTP stream."
                ),
            ),
            P("codecId", "String", doc="The codec identifier."),
            P(
                "firCount",
                "int64",
                doc=(
                    "Count the total number of Full Intra Request (FIR) packets received by the "
                    "sender."
                ),
            ),
            P(
                "pliCount",
                "int64",
                doc=(
                    "Count the total number of Packet Loss Indication (PLI) packets received by "
                    "the sender and is sent by receiver."
                ),
            ),
            P(
                "nackCount",
                "int64",
                doc=(
                    "Count the total number of Negative ACKnowledgement (NACK) packets received by "
                    "the sender and is sent by receiver."
                ),
            ),
            P(
                "sliCount",
                "int64",
                doc=(
                    "Count the total number of Slice Loss Indication (SLI) packets received by the "
                    "sender."
                ),
            ),
            P("remb", "int64", doc="The Receiver Estimated Maximum Bitrate (REMB)."),
            P("packetsLost", "int64", doc="Total number of RTP packets lost for this SSRC."),
            P("fractionLost", "double", doc="The fraction packet loss reported for this SSRC."),
        ),
    ),
    RegisterType(
        "RTCCodec",
        "core",
        extends="RTCStats",
        doc="RTC codec statistics.",
        properties=(
            P("payloadType", "int64", doc="Payload type as used in RTP encoding."),
            P("codec", "String", doc="e.g., video/vp8 or equivalent."),
            P("clockRate", "int64", doc="Represents the media sampling rate."),
            P("channels", "int64", doc="Use 2 for stereo, missing for most other cases."),
            P("parameters", "String", doc="From the SDP description line."),
        ),
    ),
    RegisterType(
        "RTCInboundRTPStreamStats",
        "core",
        extends="RTCRTPStreamStats",
        doc="Statistics that represents the measurement metrics for the incoming media stream.",
        properties=(
            P(
                "packetsReceived",
                "int64",
                doc="Total number of RTP packets received for this SSRC.",
            ),
            P("bytesReceived", "int64", doc="Total number of bytes received for this SSRC."),
            P("jitter", "double", doc="Packet Jitter measured in seconds for this SSRC."),
        ),
    ),
    RegisterType(
        "RTCOutboundRTPStreamStats",
        "core",
        extends="RTCRTPStreamStats",
        doc="Statistics that represents the measurement metrics for the outgoing media stream.",
        properties=(
            P("packetsSent", "int64", doc="Total number of RTP packets sent for this SSRC."),
            P("bytesSent", "int64", doc="Total number of bytes sent for this SSRC."),
            P(
                "targetBitrate",
                "double",
                doc="Presently configured bitrate target of this SSRC, in bits per second.",
            ),
            P(
                "roundTripTime",
                "double",
                doc=(
                    "Estimated round trip time (seconds) for this SSRC based on the RTCP timestamp."
                ),
            ),
        ),
    ),
    RegisterType(
        "RTCPeerConnectionStats",
        "core",
        extends="RTCStats",
        doc="Statistics related to the peer connection.",
        properties=(
            P(
                "dataChannelsOpened",
                "int64",
                doc="Represents the number of unique datachannels opened.",
            ),
            P(
                "dataChannelsClosed",
                "int64",
                doc="Represents the number of unique datachannels closed.",
            ),
        ),
    ),
    RegisterType(
        "RTCMediaStreamStats",
        "core",
        extends="RTCStats",
        doc="Statistics related to the media stream.",
        properties=(
            P("streamIdentifier", "String", doc="Stream identifier."),
            P("trackIds", "String[]", doc="This is the id of the stats object, not the track.id."),
        ),
    ),
    RegisterType(
        "RTCMediaStreamTrackStats",
        "core",
        extends="RTCStats",
        doc="Statistics related to the media stream.",
        properties=(
            P("trackIdentifier", "String", doc="Represents the track.id property."),
            P("remoteSource", "boolean", doc="true indicates that this is a remote source."),
            P("ssrcIds", "String[]", doc="Synchronized sources."),
            P(
                "frameWidth",
                "int64",
                doc=(
                    "Only makes sense for video media streams and represents the width of the "
                    "video frame for this SSRC."
                ),
            ),
            P(
                "frameHeight",
                "int64",
                doc=(
                    "Only makes sense for video media streams and represents the height of the "
                    "video frame for this SSRC."
                ),
            ),
            P("framesPerSecond", "double", doc="Only valid for video."),
            P("framesSent", "int64", doc="Only valid for video."),
            P(
                "framesReceived",
                "int64",
                doc="Only valid for video and when remoteSource is set to true.",
            ),
            P("framesDecoded", "int64", doc="Only valid for video."),
            P("framesDropped", "int64", doc="Only valid for video."),
            P("framesCorrupted", "int64", doc="Only valid for video."),
            P(
                "audioLevel",
                "double",
                doc=(
                    "Only valid for audio, and the value is between 0..1 (linear), where 1.0 "
                    "represents 0 dBov."
                ),
            ),
            P(
                "echoReturnLoss",
                "double",
                doc=(
                    "Only present on audio tracks sourced from a microphone where echo "
                    "cancellation is applied."
                ),
            ),
            P(
                "echoReturnLossEnhancement",
                "double",
                doc=(
                    "Only present on audio tracks sourced from a microphone where echo "
                    "cancellation is applied."
                ),
            ),
        ),
    ),
    EnumType(
        "RTCDataChannelState",
        "core",
        ("connecting", "open", "closing", "closed"),
        doc="Represents the state of the RTCDataChannel.",
    ),
    RegisterType(
        "RTCDataChannelStats",
        "core",
        extends="RTCStats",
        doc="Statistics related to RTC data channels.",
        properties=(
            P("label", "String", doc="The RTCDatachannel label."),
            P("protocol", "String", doc="The protocol used."),
            P("datachannelid", "int64", doc="The RTCDatachannel identifier."),
            P("state", "RTCDataChannelState", doc="The state of the RTCDatachannel."),
            P(
                "messagesSent",
                "int64",
                doc="Represents the total number of API 'message' events sent.",
            ),
            P(
                "bytesSent",
                "int64",
                doc=(
                    "Represents the total number of payload bytes sent on this RTCDatachannel, "
                    "i.e., not including headers or padding."
                ),
            ),
            P(
                "messagesReceived",
                "int64",
                doc="Represents the total number of API 'message' events received.",
            ),
            P(
                "bytesReceived",
                "int64",
                doc=(
                    "Represents the total number of bytes received on this RTCDatachannel, i.e., "
                    "not including headers or padding."
                ),
            ),
        ),
    ),
    RegisterType(
        "RTCTransportStats",
        "core",
        extends="RTCStats",
        doc="Statistics related to RTC data channels.",
        properties=(
            P(
                "bytesSent",
                "int64",
                doc=(
                    "Represents the total number of payload bytes sent on this PeerConnection, "
                    "i.e., not including headers or padding."
                ),
            ),
            P(
                "bytesReceived",
                "int64",
                doc=(
                    "Represents the total number of bytes received on this PeerConnection, i.e., "
                    "not including headers or padding."
                ),
            ),
            P(
                "rtcpTransportStatsId",
                "String",
                doc=(
                    "If RTP and RTCP are not multiplexed, this is the id of the transport that "
                    "gives stats for the RTCP component, and this record has only the RTP "
                    "component stats."
                ),
            ),
            P("activeConnection", "boolean", doc="Set to true when transport is active."),
            P(
                "selectedCandidatePairId",
                "String",
                doc=(
                    "It is a unique identifier that is associated to the object that was inspected "
                    "to produce the RTCIceCandidatePairStats associated with this transport."
                ),
            ),
            P(
                "localCertificateId",
                "String",
                doc="For components where DTLS is negotiated, give local certificate.",
            ),
            P(
                "remoteCertificateId",
                "String",
                doc="For components where DTLS is negotiated, give remote certificate.",
            ),
        ),
    ),
    EnumType(
        "RTCStatsIceCandidateType",
        "core",
        ("host", "serverreflexive", "peerreflexive", "relayed"),
        doc="Types of candidates.",
    ),
    RegisterType(
        "RTCIceCandidateAttributes",
        "core",
        extends="RTCStats",
        properties=(
            P(
                "ipAddress",
                "String",
                doc=(
                    "It is the IP address of the candidate, allowing for IPv4 addresses, IPv6 "
                    "addresses, and fully qualified domain names (FQDNs)."
                ),
            ),
            P("portNumber", "int64", doc="It is the port number of the candidate."),
            P("transport", "String", doc="Valid values for transport is one of udp and tcp."),
            P(
                "candidateType",
                "RTCStatsIceCandidateType",
                doc=(
                    "The enumeration RTCStatsIceCandidateType is based on the cand-type defined in "
                    "[RFC5245] section 15.1."
                ),
            ),
            P("priority", "int64", doc="Represents the priority of the candidate."),
            P(
                "addressSourceUrl",
                "String",
                doc=(
                    "The URL of the TURN or STUN server indicated in the RTCIceServers that "
                    "translated this IP address."
                ),
            ),
        ),
    ),
    EnumType(
        "RTCStatsIceCandidatePairState",
        "core",
        ("frozen", "waiting", "inprogress", "failed", "succeeded", "cancelled"),
        doc="Represents the state of the checklist for the local and remote candidates in a pair.",
    ),
    RegisterType(
        "RTCIceCandidatePairStats",
        "core",
        extends="RTCStats",
        properties=(
            P(
                "transportId",
                "String",
                doc=(
                    "It is a unique identifier that is associated to the object that was inspected "
                    "to produce the RTCTransportStats associated with this candidate pair."
                ),
            ),
            P(
                "localCandidateId",
                "String",
                doc=(
                    "It is a unique identifier that is associated to the object that was inspected "
                    "to produce the RTCIceCandidateAttributes for the local candidate associated "
                    "with this candidate pair."
                ),
            ),
            P(
                "remoteCandidateId",
                "String",
                doc=(
                    "It is a unique identifier that is associated to the object that was inspected "
                    "to produce the RTCIceCandidateAttributes for the remote candidate associated "
                    "with this candidate pair."
                ),
            ),
            P(
                "state",
                "RTCStatsIceCandidatePairState",
                doc=(
                    "Represents the state of the checklist for the local and remote candidates in "
                    "a pair."
                ),
            ),
            P(
                "priority",
                "int64",
                doc="Calculated from candidate priorities as defined in [RFC5245] section 5.7.2.",
            ),
            P(
                "nominated",
                "boolean",
                doc=(
                    "Related to updating the nominated flag described in Section 7.1.3.2.4 of "
                    "[RFC5245]."
                ),
            ),
            P("writable", "boolean", doc="Has gotten ACK to an ICE request."),
            P("readable", "boolean", doc="Has gotten a valid incoming ICE request."),
            P(
                "bytesSent",
                "int64",
                doc=(
                    "Represents the total number of payload bytes sent on this candidate pair, "
                    "i.e., not including headers or padding."
                ),
            ),
            P(
                "bytesReceived",
                "int64",
                doc=(
                    "Represents the total number of payload bytes received on this candidate pair, "
                    "i.e., not including headers or padding."
                ),
            ),
            P(
                "roundTripTime",
                "double",
                doc="Represents the RTT computed by the STUN connectivity checks.",
            ),
            P(
                "availableOutgoingBitrate",
                "double",
                doc="Measured in Bits per second, and is implementation dependent.",
            ),
            P(
                "availableIncomingBitrate",
                "double",
                doc="Measured in Bits per second, and is implementation dependent.",
            ),
        ),
    ),
    RegisterType(
        "RTCCertificateStats",
        "core",
        extends="RTCStats",
        properties=(
            P(
                "fingerprint",
                "String",
                doc="Only use the fingerprint value as defined in Section 5 of [RFC4572].",
            ),
            P("fingerprintAlgorithm", "String", doc="For instance, 'sha-256'."),
            P(
                "base64Certificate",
                "String",
                doc="For example, DER-encoded, base-64 representation of a certificate.",
            ),
            P("issuerCertificateId", "String"),
        ),
    ),
    RegisterType(
        "CodecConfiguration",
        "core",
        doc="Defines specific configuration for codecs.",
        properties=(
            Opt("name", "String", doc="Name of the codec."),
            Opt("properties", "String<>", doc="String used for tuning codec properties."),
        ),
    ),
    RegisterType(
        "RembParams",
        "core",
        doc="Defines values for parameters of congestion control.",
        properties=(
            Opt(
                "packetsRecvIntervalTop",
                "int",
                100,
                doc="Size of the RTP packets history to smooth fraction-lost.",
            ),
            Opt(
                "exponentialFactor",
                "float",
                0.04,
                doc=(
                    "Factor used to increase exponentially the next REMB when it is below the "
                    "threshold."
                ),
            ),
            Opt(
                "linealFactorMin",
                "int",
                doc=(
                    "Set the min of the factor used to increase linearly the next REMB when it is "
                    "over the threshold."
                ),
            ),
            Opt(
                "linealFactorGrade",
                "float",
                30,
                doc=(
                    "Determine the value of the next linearFactor based on the threshold and the "
                    "current REMB."
                ),
            ),
            Opt(
                "decrementFactor",
                "float",
                0.5,
                doc=(
                    "Determine how much is decreased the current REMB when too losses are detected."
                ),
            ),
            Opt(
                "thresholdFactor",
                "float",
                0.8,
                doc="Determine the next threshold (TH) when too losses are detected.",
            ),
            Opt("upLosses", "int", 12, doc="Max fraction-lost to no determine too losses."),
            Opt(
                "rembOnConnect",
                "int",
                300000,
                doc=(
                    "Initial local REMB bandwidth estimation that gets propagated when a new "
                    "endpoint is connected."
                ),
            ),
        ),
    ),
    RegisterType(
        "OfferOptions",
        "core",
        doc="Used to customize the offer created by SdpEndpoint.generateOffer.",
        properties=(
            Opt(
                "offerToReceiveAudio",
                "boolean",
                True,
                doc="Whether or not to offer to the remote peer the opportunity to send audio.",
            ),
            Opt(
                "offerToReceiveVideo",
                "boolean",
                True,
                doc="Whether or not to offer to the remote peer the opportunity to send video.",
            ),
        ),
    ),
)

EVENTS: tuple[EventType, ...] = (
    EventType(
        "RaiseBase",
        "core",
        properties=(
            P("source", "MediaObject", doc="Object that raised the event."),
            P("timestampMillis", "String", doc="The timestamp associated with this event."),
            P("tags", "Tag[]"),
        ),
    ),
    EventType(
        "Error",
        "core",
        extends="RaiseBase",
        doc="Fired whenever an undefined error related to the MediaObject has occurred.",
        properties=(
            P("description", "String", doc="Textual description of the error."),
            P("errorCode", "int", doc="Server side integer error code."),
            P("type", "String", doc="Integer code as a String."),
        ),
    ),
    EventType(
        "MediaSessionTerminated",
        "core",
        extends="Media",
        doc=(
            "Event raised when the endpoint has finished its operation and the connection has been "
            "tore down."
        ),
    ),
    EventType(
        "MediaSessionStarted",
        "core",
        extends="Media",
        doc=(
            "Event raised when the endpoint has successfully finished the signaling stage, and is "
            "ready for establishing a connection."
        ),
    ),
    EventType(
        "Media",
        "core",
        extends="RaiseBase",
        doc="Base for all events raised by elements in the Kurento media server.",
        properties=(P("type", "String", doc="Type of event that was raised."),),
    ),
    EventType(
        "ObjectCreated",
        "core",
        extends="RaiseBase",
        doc="Indicates that an object has been created on the media server.",
        properties=(P("object", "MediaObject", doc="The object that has been created."),),
    ),
    EventType(
        "ObjectDestroyed",
        "core",
        extends="RaiseBase",
        doc="Indicates that an object has been destroyed on the media server.",
        properties=(P("objectId", "String", doc="The id of the object that has been destroyed."),),
    ),
    EventType(
        "MediaStateChanged",
        "core",
        extends="Media",
        doc=(
            "This event is fired when the media connection between two peers changes, based on the "
            "RTCP packet flow."
        ),
        properties=(
            P("oldState", "MediaState", doc="The previous state."),
            P("newState", "MediaState", doc="The new state."),
        ),
    ),
    EventType(
        "ConnectionStateChanged",
        "core",
        extends="Media",
        doc="This event is raised when the connection between two peers changes.",
        properties=(
            P("oldState", "ConnectionState", doc="The previous state."),
            P("newState", "ConnectionState", doc="The new state."),
        ),
    ),
    EventType(
        "MediaFlowOutStateChanged",
        "core",
        extends="Media",
        doc="Fired when the outgoing media flow begins or ends.",
        properties=(
            P("state", "MediaFlowState", doc="Current media state."),
            P("padName", "String", doc="Name of the pad which has media."),
            P("mediaType", "MediaType", doc="Type of media that is flowing."),
        ),
    ),
    EventType(
        "MediaFlowInStateChanged",
        "core",
        extends="Media",
        doc="Fired when the incoming media flow begins or ends.",
        properties=(
            P("state", "MediaFlowState", doc="Current media state."),
            P("padName", "String", doc="Name of the pad which has media."),
            P("mediaType", "MediaType", doc="Type of media that is flowing."),
        ),
    ),
    EventType(
        "MediaTranscodingStateChanged",
        "core",
        extends="Media",
        doc=(
            "Event fired when an incoming media begins and codec transcoding is either required or "
            "not."
        ),
        properties=(
            P(
                "state",
                "MediaTranscodingState",
                doc="Current transcoding state; either enabled or disabled.",
            ),
            P("binName", "String", doc="Name of the GStreamer bin which is processing the media."),
            P(
                "mediaType",
                "MediaType",
                doc="Type of media that is being processed; either audio or video.",
            ),
        ),
    ),
    EventType(
        "ElementConnected",
        "core",
        extends="Media",
        doc="Indicates that an element has been connected to another.",
        properties=(
            P("sink", "MediaElement", doc="sink element in new connection."),
            P("mediaType", "MediaType", doc="Media type of the connection."),
            P("sourceMediaDescription", "String", doc="Description of the source media."),
            P("sinkMediaDescription", "String", doc="Description of the sink media."),
        ),
    ),
    EventType(
        "ElementDisconnected",
        "core",
        extends="Media",
        doc="Indicates that an element has been disconnected from another.",
        properties=(
            P("sink", "MediaElement", doc="sink element in previous connection."),
            P("mediaType", "MediaType", doc="Media type of the previous connection."),
            P("sourceMediaDescription", "String", doc="Description of the source media."),
            P("sinkMediaDescription", "String", doc="Description of the sink media."),
        ),
    ),
    EventType(
        "UriEndpointStateChanged",
        "core",
        extends="Media",
        doc="Indicates the new state of the endpoint.",
        properties=(P("state", "UriEndpointState", doc="the new state."),),
    ),
)

CORE: Module = Module(
    name="core",
    version="7.3.0",
    kurento_version="7.3.0",
    code={
        "kmd": {
            "java": {
                "mavenGroupId": "org.kurento",
                "mavenArtifactId": "kms-api-core",
                "mavenVersion": "7.3.0",
            }
        },
        "api": {
            "java": {
                "packageName": "org.kurento.client",
                "mavenGroupId": "org.kurento",
                "mavenArtifactId": "kurento-client",
                "mavenVersion": "7.3.0",
            },
            "js": {
                "nodeName": "kurento-client-core",
                "npmDescription": "JavaScript Client API for Kurento Media Server",
                "npmGit": "https://github.com/Kurento/kurento-client-core-js.git",
                "npmVersion": "7.3.0",
            },
        },
        "implementation": {"cppNamespace": "kurento", "lib": "libkmscore"},
    },
    classes=CLASSES,
    complex_types=COMPLEX_TYPES,
    events=EVENTS,
)
