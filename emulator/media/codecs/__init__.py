"""Codecs: what the server negotiates, transcoding with PyAV (decoded frames pass through the
``FrameSink`` seam of ``emulator/media/flow.py``), and demuxed frames packetised into RTP.
"""
