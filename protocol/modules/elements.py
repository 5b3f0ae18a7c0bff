"""The ``elements`` module of Kurento 7.3.0: WebRTC, RTP, player, recorder, HTTP endpoints.

Written for kurento-emulator; ``tests/protocol/test_registry_vs_kmd.py`` checks every signature
against the official ``elements.kmd.json``. Each doc is the first sentence of the KMD's, in plain
text.
"""

from __future__ import annotations

from protocol.types import (
    ComplexType,
    EnumType,
    EventType,
    Method,
    Module,
    ModuleImport,
    Opt,
    P,
    Property,
    RegisterType,
    RemoteClass,
)

CLASSES: tuple[RemoteClass, ...] = (
    RemoteClass(
        "AlphaBlending",
        "elements",
        extends="Hub",
        doc=(
            "A Hub that mixes the MediaType.AUDIO stream of its connected sources and constructs "
            "one output with MediaType.VIDEO streams of its connected sources into its sink."
        ),
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the dispatcher belongs.",
            ),
        ),
        constructor_doc="Create for the given pipeline.",
        methods=(
            Method(
                "setMaster",
                params=(
                    P(
                        "source",
                        "HubPort",
                        doc="The reference to the HubPort setting as master port.",
                    ),
                    P("zOrder", "int", doc="The order in z to draw the master image."),
                ),
                doc="Sets the source port that will be the master entry to the mixer.",
            ),
            Method(
                "setPortProperties",
                params=(
                    P("relativeX", "float", doc="The x position relative to the master port."),
                    P("relativeY", "float", doc="The y position relative to the master port."),
                    P("zOrder", "int", doc="The order in z to draw the images."),
                    P(
                        "relativeWidth",
                        "float",
                        doc="The image width relative to the master port width.",
                    ),
                    P(
                        "relativeHeight",
                        "float",
                        doc="The image height relative to the master port height.",
                    ),
                    P("port", "HubPort", doc="The reference to the confingured port."),
                ),
                doc="Configure the blending mode of one port.",
            ),
        ),
    ),
    RemoteClass(
        "Composite",
        "elements",
        extends="Hub",
        doc=(
            "A Hub that mixes the MediaType.AUDIO stream of its connected sources and constructs a "
            "grid with the MediaType.VIDEO streams of its connected sources into its sink."
        ),
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the dispatcher belongs.",
            ),
            Opt("width", "int", 800, doc="screen width."),
            Opt("height", "int", 600, doc="screen height."),
            Opt("framerate", "int", 15, doc="frames per second."),
        ),
        constructor_doc="Create for the given pipeline.",
    ),
    RemoteClass(
        "Dispatcher",
        "elements",
        extends="Hub",
        doc="A Hub that allows routing between arbitrary port pairs.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the dispatcher belongs.",
            ),
        ),
        constructor_doc="Create a Dispatcher belonging to the given pipeline.",
        methods=(
            Method(
                "connect",
                params=(
                    P("source", "HubPort", doc="Source port to be connected."),
                    P("sink", "HubPort", doc="Sink port to be connected."),
                ),
                doc=(
                    "Connects each corresponding MediaType of the given source port with the sink "
                    "port."
                ),
            ),
        ),
    ),
    RemoteClass(
        "DispatcherOneToMany",
        "elements",
        extends="Hub",
        doc="A Hub that sends a given source to all the connected sinks.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the dispatcher belongs.",
            ),
        ),
        constructor_doc="Create a DispatcherOneToMany belonging to the given pipeline.",
        methods=(
            Method(
                "setSource",
                params=(P("source", "HubPort", doc="source to be broadcasted."),),
                doc=(
                    "Sets the source port that will be connected to the sinks of every HubPort of "
                    "the dispatcher."
                ),
            ),
            Method("removeSource", doc="Remove the source port and stop the media pipeline."),
        ),
    ),
    RemoteClass(
        "HttpEndpoint",
        "elements",
        extends="SessionEndpoint",
        abstract=True,
        doc=(
            "Endpoint that enables Kurento to work as an HTTP server, allowing peer HTTP clients "
            "to access media."
        ),
        methods=(
            Method(
                "getUrl",
                returns="String",
                doc="Obtains the URL associated to this endpoint.",
                return_doc="The url as a String.",
            ),
        ),
    ),
    RemoteClass(
        "HttpPostEndpoint",
        "elements",
        extends="HttpEndpoint",
        doc=(
            "An HttpPostEndpoint contains SINK pads for AUDIO and VIDEO, which provide access to "
            "an HTTP file upload function."
        ),
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the endpoint belongs.",
            ),
            Opt(
                "disconnectionTimeout",
                "int",
                2,
                doc=(
                    "This is the time that an http endpoint will wait for a reconnection, in case "
                    "an HTTP connection is lost."
                ),
            ),
            Opt(
                "useEncodedMedia",
                "boolean",
                False,
                doc=(
                    "Feed the input media as-is to the Media Pipeline, instead of first decoding "
                    "it."
                ),
            ),
        ),
        constructor_doc="Builder for the HttpPostEndpoint.",
        events=("EndOfStream",),
    ),
    RemoteClass(
        "Mixer",
        "elements",
        extends="Hub",
        doc=(
            "A Hub that allows routing of video between arbitrary port pairs and mixing of audio "
            "among several ports."
        ),
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the Mixer belongs.",
            ),
        ),
        constructor_doc="Create a Mixer belonging to the given pipeline.",
        methods=(
            Method(
                "connect",
                params=(
                    P("media", "MediaType", doc="The sort of media stream to be connected."),
                    P("source", "HubPort", doc="Source port to be connected."),
                    P("sink", "HubPort", doc="Sink port to be connected."),
                ),
                doc=(
                    "Connects each corresponding MediaType of the given source port with the sink "
                    "port."
                ),
            ),
            Method(
                "disconnect",
                params=(
                    P("media", "MediaType", doc="The sort of media stream to be disconnected."),
                    P("source", "HubPort", doc="Audio source port to be disconnected."),
                    P("sink", "HubPort", doc="Audio sink port to be disconnected."),
                ),
                doc=(
                    "Disonnects each corresponding MediaType of the given source port from the "
                    "sink port."
                ),
            ),
        ),
    ),
    RemoteClass(
        "PlayerEndpoint",
        "elements",
        extends="UriEndpoint",
        doc="Retrieves content from external sources.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="The MediaPipeline this PlayerEndpoint belongs to.",
            ),
            P("uri", "String", doc="URI pointing to the video."),
            Opt(
                "useEncodedMedia",
                "boolean",
                False,
                doc=(
                    "Feed an encoded media as-is to the Media Pipeline, instead of first decoding "
                    "it."
                ),
            ),
            Opt("networkCache", "int", 2000, doc="RTSP buffer length."),
        ),
        constructor_doc="Create a PlayerEndpoint.",
        properties=(
            Property(
                "videoInfo",
                "VideoInfo",
                read_only=True,
                doc="Returns info about the source being played.",
            ),
            Property(
                "elementGstreamerDot",
                "String",
                read_only=True,
                doc="Returns the GStreamer DOT string for this element's private pipeline.",
            ),
            Property("position", "int64", doc="Get or set the actual position of the video in ms."),
        ),
        methods=(
            Method("play", doc="Starts reproducing the media, sending it to the MediaSource."),
        ),
        events=("EndOfStream",),
    ),
    RemoteClass(
        "RecorderEndpoint",
        "elements",
        extends="UriEndpoint",
        doc="Provides functionality to store media contents.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the endpoint belongs.",
            ),
            P("uri", "String", doc="URI where the recording will be stored."),
            Opt(
                "mediaProfile",
                "MediaProfileSpecType",
                "WEBM",
                doc="Selects the media format used for recording.",
            ),
            Opt(
                "stopOnEndOfStream",
                "boolean",
                False,
                doc=(
                    "Forces the recorder endpoint to finish processing data when an End Of Stream "
                    "(EOS) is detected in the stream."
                ),
            ),
        ),
        constructor_doc="Builder for the RecorderEndpoint.",
        methods=(
            Method("record", doc="Starts storing media received through the sink pad."),
            Method(
                "stopAndWait",
                doc=(
                    "Stops recording and does not return until all the content has been written to "
                    "the selected uri."
                ),
            ),
        ),
        events=("Recording", "Paused", "Stopped"),
    ),
    RemoteClass(
        "RtpEndpoint",
        "elements",
        extends="BaseRtpEndpoint",
        doc=(
            "Endpoint that provides bidirectional content delivery capabilities through the RTP or "
            "SRTP protocols."
        ),
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the endpoint belongs.",
            ),
            Opt("crypto", "SDES", {}, doc="SDES-type param."),
            Opt(
                "useIpv6",
                "boolean",
                False,
                doc="This configures the endpoint to use IPv6 instead of IPv4.",
            ),
        ),
        constructor_doc="Builder for the RtpEndpoint.",
        events=("OnKeySoftLimit",),
    ),
    RemoteClass(
        "WebRtcEndpoint",
        "elements",
        extends="BaseRtpEndpoint",
        doc="Endpoint that provides bidirectional WebRTC capabilities for Kurento.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the endpoint belongs.",
            ),
            Opt("recvonly", "boolean", False, doc="Single direction, receive-only endpoint."),
            Opt("sendonly", "boolean", False, doc="Single direction, send-only endpoint."),
            Opt("useDataChannels", "boolean", False, doc="Activate data channels support."),
            Opt(
                "certificateKeyType",
                "CertificateKeyType",
                "RSA",
                doc="Define the type of the certificate used in dtls.",
            ),
            Opt(
                "qosDscp",
                "DSCPValue",
                "NO_VALUE",
                doc="DSCP value to be used in network traffic sent from this endpoint.",
            ),
        ),
        constructor_doc="Builder for the WebRtcEndpoint.",
        properties=(
            Property(
                "networkInterfaces",
                "String",
                doc="Local network interfaces used for ICE gathering.",
            ),
            Property("iceTcp", "boolean", doc="Enable ICE-TCP candidate gathering."),
            Property("stunServerAddress", "String", doc="STUN server IP address."),
            Property("stunServerPort", "int", doc="Port of the STUN server."),
            Property("turnUrl", "String", doc="TURN server URL."),
            Property("externalIPv4", "String", doc="External IPv4 address of the media server."),
            Property("externalIPv6", "String", doc="External IPv6 address of the media server."),
            Property(
                "ICECandidatePairs",
                "IceCandidatePair[]",
                read_only=True,
                doc=(
                    "the ICE candidate pair (local and remote candidates) used by the ICE library "
                    "for each stream."
                ),
            ),
            Property(
                "IceConnectionState",
                "IceConnection[]",
                read_only=True,
                doc="the ICE connection state for all the connections.",
            ),
            Property(
                "DtlsConnectionState",
                "DtlsConnection[]",
                read_only=True,
                doc="the DTLS connection state for all the connections.",
            ),
        ),
        methods=(
            Method("gatherCandidates", doc="Start the ICE candidate gathering."),
            Method(
                "addIceCandidate",
                params=(P("candidate", "IceCandidate", doc="Remote ICE candidate."),),
                doc="Process an ICE candidate sent by the remote peer of the connection.",
            ),
            Method(
                "createDataChannel",
                params=(
                    Opt("label", "String", "", doc="Channel's label."),
                    Opt(
                        "ordered",
                        "boolean",
                        True,
                        doc="If the data channel should guarantee order or not.",
                    ),
                    Opt(
                        "maxPacketLifeTime",
                        "int",
                        -1,
                        doc=(
                            "The time window (in milliseconds) during which transmissions and "
                            "retransmissions may take place in unreliable mode."
                        ),
                    ),
                    Opt(
                        "maxRetransmits",
                        "int",
                        -1,
                        doc=(
                            "maximum number of retransmissions that are attempted in unreliable "
                            "mode."
                        ),
                    ),
                    Opt(
                        "protocol",
                        "String",
                        "",
                        doc="Name of the subprotocol used for data communication.",
                    ),
                ),
                doc="Create a new data channel, if data channels are supported.",
            ),
            Method(
                "closeDataChannel",
                params=(P("channelId", "int", doc="The channel identifier."),),
                doc="Closes an open data channel.",
            ),
        ),
        events=(
            "IceCandidateFound",
            "IceGatheringDone",
            "IceComponentStateChanged",
            "DtlsConnectionStateChange",
            "DataChannelOpened",
            "DataChannelClosed",
            "NewCandidatePairSelected",
        ),
    ),
)

COMPLEX_TYPES: tuple[ComplexType, ...] = (
    EnumType(
        "CryptoSuite",
        "elements",
        (
            "AES_128_CM_HMAC_SHA1_32",
            "AES_128_CM_HMAC_SHA1_80",
            "AES_256_CM_HMAC_SHA1_32",
            "AES_256_CM_HMAC_SHA1_80",
        ),
        doc="Describes the encryption and authentication algorithms.",
    ),
    RegisterType(
        "SDES",
        "elements",
        doc="Security Descriptions for Media Streams.",
        properties=(
            Opt("key", "String", doc="Master key and salt (plain text)."),
            Opt("keyBase64", "String", doc="Master key and salt (base64 encoded)."),
            Opt("crypto", "CryptoSuite", doc="Selects the cryptographic suite to be used."),
        ),
    ),
    EnumType(
        "MediaProfileSpecType",
        "elements",
        (
            "WEBM",
            "MKV",
            "MP4",
            "WEBM_VIDEO_ONLY",
            "WEBM_AUDIO_ONLY",
            "MKV_VIDEO_ONLY",
            "MKV_AUDIO_ONLY",
            "MP4_VIDEO_ONLY",
            "MP4_AUDIO_ONLY",
            "JPEG_VIDEO_ONLY",
            "KURENTO_SPLIT_RECORDER",
            "FLV",
        ),
        doc=(
            "Media profile, used by the RecorderEndpoint builder to specify the codecs and media "
            "container that should be used for the recordings."
        ),
    ),
    EnumType(
        "GapsFixMethod",
        "elements",
        ("NONE", "GENPTS", "FILL_IF_TRANSCODING"),
        doc="How to fix gaps when they are found in the recorded stream.",
    ),
    RegisterType(
        "VideoInfo",
        "elements",
        properties=(
            P("isSeekable", "boolean", doc="Seek is possible in video source."),
            P("seekableInit", "int64", doc="First video position to do seek in ms."),
            P("seekableEnd", "int64", doc="Last video position to do seek in ms."),
            P("duration", "int64", doc="Video duration in ms."),
        ),
    ),
    RegisterType(
        "IceCandidate",
        "elements",
        doc="IceCandidate representation based on RTCIceCandidate interface.",
        properties=(
            P(
                "candidate",
                "String",
                doc="The candidate-attribute as defined in section 15.1 of ICE (rfc5245).",
            ),
            P(
                "sdpMid",
                "String",
                doc=(
                    "If present, this contains the identifier of the 'media stream identification'."
                ),
            ),
            P(
                "sdpMLineIndex",
                "int",
                doc=(
                    "The index (starting at zero) of the m-line in the SDP this candidate is "
                    "associated with."
                ),
            ),
        ),
    ),
    EnumType(
        "IceComponentState",
        "elements",
        ("DISCONNECTED", "GATHERING", "CONNECTING", "CONNECTED", "READY", "FAILED"),
        doc="States of an ICE component.",
    ),
    EnumType(
        "DtlsConnectionState",
        "elements",
        ("NEW", "CLOSED", "FAILED", "CONNECTING", "CONNECTED"),
        doc="States of a DTLS connection.",
    ),
    RegisterType(
        "IceCandidatePair",
        "elements",
        doc="The ICE candidate pair used by the ICE library, for a certain stream.",
        properties=(
            P("streamId", "String", doc="Stream ID of the ICE connection."),
            P("componentId", "int", doc="Component ID of the ICE connection."),
            P("localCandidate", "String", doc="The local candidate used by the ICE library."),
            P("remoteCandidate", "String", doc="The remote candidate used by the ICE library."),
        ),
    ),
    RegisterType(
        "IceConnection",
        "elements",
        doc="The ICE connection state for a certain stream and component.",
        properties=(
            P("streamId", "String", doc="The ID of the stream."),
            P("componentId", "int", doc="The ID of the component."),
            P("state", "IceComponentState", doc="The state of the component."),
        ),
    ),
    RegisterType(
        "DtlsConnection",
        "elements",
        doc="The DTLS connection state for a certain stream and component.",
        properties=(
            P("streamId", "String", doc="The ID of the stream."),
            P("componentId", "String", doc="The ID of the component."),
            P("connectionId", "String", doc="The ID of the underlying DTLS connection."),
            P("state", "DtlsConnectionState", doc="The state of the component."),
        ),
    ),
    EnumType("CertificateKeyType", "elements", ("RSA", "ECDSA")),
    EnumType(
        "DSCPValue",
        "elements",
        (
            "NO_DSCP",
            "NO_VALUE",
            "AUDIO_VERYLOW",
            "AUDIO_LOW",
            "AUDIO_MEDIUM",
            "AUDIO_HIGH",
            "VIDEO_VERYLOW",
            "VIDEO_LOW",
            "VIDEO_MEDIUM",
            "VIDEO_MEDIUM_THROUGHPUT",
            "VIDEO_HIGH",
            "VIDEO_HIGH_THROUGHPUT",
            "DATA_VERYLOW",
            "DATA_LOW",
            "DATA_MEDIUM",
            "DATA_HIGH",
            "CHROME_HIGH",
            "CHROME_MEDIUM",
            "CHROME_LOW",
            "CHROME_VERYLOW",
            "CS0",
            "CS1",
            "CS2",
            "CS3",
            "CS4",
            "CS5",
            "CS6",
            "CS7",
            "AF11",
            "AF12",
            "AF13",
            "AF21",
            "AF22",
            "AF23",
            "AF31",
            "AF32",
            "AF33",
            "AF41",
            "AF42",
            "AF43",
            "EF",
            "VOICEADMIT",
            "LE",
        ),
        doc="Possible DSCP values.",
    ),
)

EVENTS: tuple[EventType, ...] = (
    EventType(
        "OnKeySoftLimit",
        "elements",
        extends="Media",
        doc=(
            "Fired when encryption is used and any stream reached the soft key usage limit, which "
            "means it will expire soon."
        ),
        properties=(P("mediaType", "MediaType", doc="The media stream."),),
    ),
    EventType(
        "Recording", "elements", extends="Media", doc="Fired when the recoding effectively starts."
    ),
    EventType(
        "Paused", "elements", extends="Media", doc="Fired when the recorder goes to pause state."
    ),
    EventType(
        "Stopped",
        "elements",
        extends="Media",
        doc=(
            "Fired when the recorder has been stopped and all the media has been written to "
            "storage."
        ),
    ),
    EventType(
        "EndOfStream",
        "elements",
        extends="Media",
        doc="Event raised when the stream that the element sends out is finished.",
    ),
    EventType(
        "IceCandidateFound",
        "elements",
        extends="Media",
        doc="Notifies a new local candidate.",
        properties=(P("candidate", "IceCandidate", doc="New local candidate."),),
    ),
    EventType(
        "IceGatheringDone",
        "elements",
        extends="Media",
        doc="Event fired when al ICE candidates have been gathered.",
    ),
    EventType(
        "IceComponentStateChanged",
        "elements",
        extends="Media",
        doc="Event fired when and ICE component state changes.",
        properties=(
            P("streamId", "int", doc="The ID of the stream."),
            P("componentId", "int", doc="The ID of the component."),
            P("state", "IceComponentState", doc="The state of the component."),
        ),
    ),
    EventType(
        "DtlsConnectionStateChange",
        "elements",
        extends="Media",
        doc="Event fired when and ICE component DTLS connection state changes.",
        properties=(
            P("streamId", "String", doc="The ID of the stream."),
            P("componentId", "String", doc="The ID of the component."),
            P("connectionId", "String", doc="ID of the underlying DTLS connection."),
            P("state", "DtlsConnectionState", doc="The state of the component."),
        ),
    ),
    EventType(
        "DataChannelOpened",
        "elements",
        extends="Media",
        doc="Event fired when a new data channel is created.",
        properties=(P("channelId", "int", doc="The channel identifier."),),
    ),
    EventType(
        "DataChannelClosed",
        "elements",
        extends="Media",
        doc="Event fired when a data channel is closed.",
        properties=(P("channelId", "int", doc="The channel identifier."),),
    ),
    EventType(
        "NewCandidatePairSelected",
        "elements",
        extends="Media",
        doc="Event fired when a new pair of ICE candidates is used by the ICE library.",
        properties=(P("candidatePair", "IceCandidatePair", doc="The new pair of candidates."),),
    ),
)

ELEMENTS: Module = Module(
    name="elements",
    version="7.3.0",
    kurento_version="^7.1.0",
    code={
        "kmd": {
            "java": {
                "mavenGroupId": "org.kurento",
                "mavenArtifactId": "kms-api-elements",
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
                "nodeName": "kurento-client-elements",
                "npmDescription": "JavaScript Client API for Kurento Media Server",
                "npmGit": "https://github.com/Kurento/kurento-client-elements-js.git",
                "npmVersion": "7.3.0",
            },
        },
        "implementation": {"cppNamespace": "kurento", "lib": "libkmselements"},
    },
    classes=CLASSES,
    complex_types=COMPLEX_TYPES,
    events=EVENTS,
    imports=(ModuleImport("core", "^7.1.0", "[7.1.0,8.0.0-SNAPSHOT)", ">=7.1.0 <8.0.0"),),
)
