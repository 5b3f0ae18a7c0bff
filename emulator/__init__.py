"""kurento-emulator: the server, the media objects and the aiortc glue."""

__version__ = "0.1.0"
