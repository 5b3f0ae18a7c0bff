"""SDP offer/answer: the m-line plan for WebRTC and plain RTP, and the negotiation state both
SdpEndpoint kinds share.
"""
