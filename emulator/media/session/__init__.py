"""The RTP session of an endpoint: streams in and out, RTCP per leg, feedback and keyframes,
flows and media state, the one receive door and send path, and its stats entries.
"""
