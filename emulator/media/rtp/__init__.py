"""RTP itself: the packet view and rewrite, the per-endpoint session (RTCP, feedback, keyframes,
the one receive door and send path), stream state and stats, bitrate policy, fragmentation.
"""
