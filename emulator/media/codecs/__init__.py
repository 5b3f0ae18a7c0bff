"""Codecs: what the server negotiates, and transcoding with PyAV (decoded frames pass through
the ``FrameSink`` seam of ``emulator/media/flow.py``).
"""
