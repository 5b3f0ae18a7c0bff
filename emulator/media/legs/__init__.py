"""How media leaves and enters the server towards one peer: ICE (aioice), DTLS-SRTP (aiortc),
the WebRTC peer that ties them, SDES keys for plain RTP, and the one adapter module that holds
every private aiortc/aioice name the project touches.
"""
