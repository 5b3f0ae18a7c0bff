"""The ``filters`` module of Kurento 7.3.0: GStreamer, overlay and ZBar filters.

Written for kurento-emulator; ``tests/protocol/test_registry_vs_kmd.py`` checks every signature
against the official ``filters.kmd.json``. Each doc is the first sentence of the KMD's, in plain
text.
"""

from __future__ import annotations

from protocol.types import (
    EventType,
    Method,
    Module,
    ModuleImport,
    Opt,
    P,
    Property,
    RemoteClass,
)

CLASSES: tuple[RemoteClass, ...] = (
    RemoteClass(
        "FaceOverlayFilter",
        "filters",
        extends="Filter",
        doc="FaceOverlayFilter interface.",
        constructor=(
            P("mediaPipeline", "MediaPipeline", doc="pipeline to which this Filter belons."),
        ),
        constructor_doc="FaceOverlayFilter interface.",
        methods=(
            Method(
                "unsetOverlayedImage", doc="Clear the image to be shown over each detected face."
            ),
            Method(
                "setOverlayedImage",
                params=(
                    P("uri", "String", doc="URI where the image is located."),
                    P(
                        "offsetXPercent",
                        "float",
                        doc=(
                            "the offset applied to the image, from the X coordinate of the "
                            "detected face upper right corner."
                        ),
                    ),
                    P(
                        "offsetYPercent",
                        "float",
                        doc=(
                            "the offset applied to the image, from the Y coordinate of the "
                            "detected face upper right corner."
                        ),
                    ),
                    P(
                        "widthPercent",
                        "float",
                        doc=(
                            "proportional width of the overlaid image, relative to the width of "
                            "the detected face."
                        ),
                    ),
                    P(
                        "heightPercent",
                        "float",
                        doc=(
                            "proportional height of the overlaid image, relative to the height of "
                            "the detected face."
                        ),
                    ),
                ),
                doc="Sets the image to use as overlay on the detected faces.",
            ),
        ),
    ),
    RemoteClass(
        "GStreamerFilter",
        "filters",
        extends="Filter",
        doc="A generic filter that allows injecting a single GStreamer element.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the filter belongs.",
            ),
            P(
                "command",
                "String",
                doc=(
                    "String used to instantiate the GStreamer element, as in gst-launch "
                    "(https://gstreamer.freedesktop.org/documentation/tools/gst-launch.html)."
                ),
            ),
            Opt(
                "filterType",
                "FilterType",
                "AUTODETECT",
                doc="Sets the filter as Audio, Video, or Autodetect.",
            ),
        ),
        constructor_doc="Create a GStreamerFilter.",
        properties=(
            Property(
                "command",
                "String",
                read_only=True,
                doc=(
                    "String used to instantiate the GStreamer element, as in gst-launch "
                    "(https://gstreamer.freedesktop.org/documentation/tools/gst-launch.html)."
                ),
            ),
        ),
        methods=(
            Method(
                "setElementProperty",
                params=(
                    P(
                        "propertyName",
                        "String",
                        doc=(
                            "Name of the property that needs to be modified in the GStreamer "
                            "element."
                        ),
                    ),
                    P(
                        "propertyValue",
                        "String",
                        doc="Value that must be assigned to the property.",
                    ),
                ),
                doc="Provide a value to one of the GStreamer element's properties.",
            ),
        ),
    ),
    RemoteClass(
        "ImageOverlayFilter",
        "filters",
        extends="Filter",
        doc="ImageOverlayFilter interface.",
        constructor=(
            P("mediaPipeline", "MediaPipeline", doc="pipeline to which this Filter belongs."),
        ),
        constructor_doc="ImageOverlayFilter interface.",
        methods=(
            Method(
                "removeImage",
                params=(P("id", "String", doc="Image ID to be removed."),),
                doc="Remove the image with the given ID.",
            ),
            Method(
                "addImage",
                params=(
                    P("id", "String", doc="image ID."),
                    P("uri", "String", doc="URI where the image is located."),
                    P(
                        "offsetXPercent",
                        "float",
                        doc=(
                            "Percentage relative to the image width to calculate the X coordinate "
                            "of the position (left upper corner) [0..1]."
                        ),
                    ),
                    P(
                        "offsetYPercent",
                        "float",
                        doc=(
                            "Percentage relative to the image height to calculate the Y coordinate "
                            "of the position (left upper corner) [0..1]."
                        ),
                    ),
                    P(
                        "widthPercent",
                        "float",
                        doc=(
                            "Proportional width of the overlaid image, relative to the width of "
                            "the video [0..1]."
                        ),
                    ),
                    P(
                        "heightPercent",
                        "float",
                        doc=(
                            "Proportional height of the overlaid image, relative to the height of "
                            "the video [0..1]."
                        ),
                    ),
                    P(
                        "keepAspectRatio",
                        "boolean",
                        doc="Keep the aspect ratio of the original image.",
                    ),
                    P(
                        "center",
                        "boolean",
                        doc=(
                            "If the image doesn't fit in the dimensions, the image will be center "
                            "into the region defined by height and width."
                        ),
                    ),
                ),
                doc="Add an image to be used as overlay.",
            ),
        ),
    ),
    RemoteClass(
        "OpenCVFilter", "filters", extends="Filter", abstract=True, doc="Generic OpenCV Filter."
    ),
    RemoteClass(
        "ZBarFilter",
        "filters",
        extends="Filter",
        doc="This filter detects QR codes in a video feed.",
        constructor=(
            P(
                "mediaPipeline",
                "MediaPipeline",
                doc="the MediaPipeline to which the filter belongs.",
            ),
        ),
        constructor_doc="Builder for the ZBarFilter.",
        events=("CodeFound",),
    ),
)

EVENTS: tuple[EventType, ...] = (
    EventType(
        "CodeFound",
        "filters",
        extends="Media",
        doc="Event raised by a ZBarFilter when a code is found in the data being streamed.",
        properties=(
            P("codeType", "String", doc="type of QR code found."),
            P("value", "String", doc="value contained in the QR code."),
        ),
    ),
)

FILTERS: Module = Module(
    name="filters",
    version="7.3.0",
    kurento_version="^7.1.0",
    code={
        "kmd": {
            "java": {
                "mavenGroupId": "org.kurento",
                "mavenArtifactId": "kms-api-filters",
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
                "nodeName": "kurento-client-filters",
                "npmDescription": "JavaScript Client API for Kurento Media Server",
                "npmGit": "https://github.com/Kurento/kurento-client-filters-js.git",
                "npmVersion": "7.3.0",
            },
        },
        "implementation": {"cppNamespace": "kurento", "lib": "libkmsfilters"},
    },
    classes=CLASSES,
    events=EVENTS,
    imports=(
        ModuleImport("core", "^7.1.0", "[7.1.0,8.0.0-SNAPSHOT)", ">=7.1.0 <8.0.0"),
        ModuleImport("elements", "^7.1.0", "[7.1.0,8.0.0-SNAPSHOT)", ">=7.1.0 <8.0.0"),
    ),
)
