"""SDES-SRTP for RtpEndpoint: the KMD ``SDES`` constructor parameter, ``a=crypto`` lines, libsrtp.

RFC 4568 (SDES) carries the master key and salt in the SDP; RFC 3711 (SRTP) protects the packets.
KMS's ``CryptoSuite`` names (``AES_128_CM_HMAC_SHA1_80``) differ from the SDP's
(``AES_CM_128_HMAC_SHA1_80``, RFC 4568 section 6.2; ``AES_256_CM_HMAC_SHA1_80``, RFC 6188).
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import pylibsrtp

from protocol.errors import MediaObjectIllegalParamError
from protocol.sdp import Crypto

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Suite:
    """One crypto suite: its KMD name, SDP name, master key+salt length and libsrtp profile."""

    kmd: str
    sdp: str
    key_length: int
    profile: int | None
    """pylibsrtp profile; None when the bundled libsrtp cannot run the suite."""


SUITES = {
    suite.kmd: suite
    for suite in (
        Suite(
            "AES_128_CM_HMAC_SHA1_32",
            "AES_CM_128_HMAC_SHA1_32",
            30,
            pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
        ),
        Suite(
            "AES_128_CM_HMAC_SHA1_80",
            "AES_CM_128_HMAC_SHA1_80",
            30,
            pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        ),
        # pylibsrtp 1.0 exposes libsrtp's DTLS-SRTP profiles only: AES-256-CM has none.
        Suite("AES_256_CM_HMAC_SHA1_32", "AES_256_CM_HMAC_SHA1_32", 46, None),
        Suite("AES_256_CM_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_80", 46, None),
    )
}
BY_SDP_NAME = {suite.sdp: suite for suite in SUITES.values()}


@dataclass(frozen=True, slots=True)
class SdesConfig:
    """The local side of SDES: the suite and our master key+salt."""

    suite: Suite
    key: bytes

    def crypto_line(self, tag: int) -> Crypto:
        """Our ``a=crypto`` line with that tag."""
        inline = base64.b64encode(self.key).decode("ascii")
        return Crypto(tag, self.suite.sdp, f"inline:{inline}")


def sdes_from_param(param: dict[str, Any] | None) -> SdesConfig | None:
    """The KMD ``SDES`` constructor parameter as a config; None (plain RTP) without a suite.

    As KMS's ``RtpEndpointImpl``, SRTP is on only when the suite is given; a key without a
    suite is refused rather than silently ignored.

    Raises:
        MediaObjectIllegalParamError: 40107 for a key of the wrong length, bad base64, a key
            without a suite, or a suite this build cannot run.
    """
    if not param:
        return None
    name = param.get("crypto")
    key_text, key_base64 = param.get("key"), param.get("keyBase64")
    if not name:
        if key_text or key_base64:
            raise MediaObjectIllegalParamError(
                "crypto: a key was given without a suite; set crypto.crypto (CryptoSuite)"
            )
        return None
    suite = SUITES.get(str(name))
    if suite is None:
        raise MediaObjectIllegalParamError(f"crypto: unknown CryptoSuite {name!r}")
    if suite.profile is None:
        supported = ", ".join(s.kmd for s in SUITES.values() if s.profile is not None)
        raise MediaObjectIllegalParamError(
            f"crypto: {suite.kmd} is not supported by this build's libsrtp; use {supported}"
        )
    if key_text and key_base64:
        raise MediaObjectIllegalParamError("crypto: set either key or keyBase64, not both")
    if key_base64:
        try:
            key = base64.b64decode(str(key_base64), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MediaObjectIllegalParamError(f"crypto.keyBase64 is not base64: {exc}") from exc
    elif key_text:
        key = str(key_text).encode("utf-8")
    else:
        key = secrets.token_bytes(suite.key_length)
    if len(key) != suite.key_length:
        raise MediaObjectIllegalParamError(
            f"crypto: {suite.kmd} needs a master key+salt of {suite.key_length} bytes, "
            f"got {len(key)}"
        )
    return SdesConfig(suite, key)


def remote_key(crypto: Crypto, suite: Suite) -> bytes | None:
    """The master key+salt of a remote ``a=crypto`` line, or None when it is unusable."""
    try:
        key = base64.b64decode(crypto.key_base64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == suite.key_length else None


def choose_crypto(offered: list[Crypto], suite: Suite) -> tuple[Crypto, bytes] | None:
    """The first offered line of our suite with a usable key (RFC 4568 section 7.1.1)."""
    for crypto in offered:
        if crypto.suite == suite.sdp:
            key = remote_key(crypto, suite)
            if key is not None:
                return crypto, key
    return None


class SrtpPair:
    """libsrtp sessions of one RTP leg: ours protects, the remote key unprotects."""

    def __init__(self, local: SdesConfig, remote_key: bytes) -> None:
        profile = local.suite.profile
        assert profile is not None
        self.remote_key = remote_key
        self.tx = pylibsrtp.Session(
            pylibsrtp.Policy(
                key=local.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=profile
            )
        )
        self.rx = pylibsrtp.Session(
            pylibsrtp.Policy(
                key=remote_key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND, srtp_profile=profile
            )
        )
        self.failures = 0

    def protect(self, data: bytes, rtcp: bool) -> bytes:
        """Encrypt and authenticate an outgoing packet."""
        return bytes(self.tx.protect_rtcp(data) if rtcp else self.tx.protect(data))

    def unprotect(self, data: bytes, rtcp: bool) -> bytes | None:
        """Decrypt and authenticate an incoming packet; None (counted, logged) when it fails."""
        try:
            return bytes(self.rx.unprotect_rtcp(data) if rtcp else self.rx.unprotect(data))
        except (pylibsrtp.Error, ValueError):  # ValueError: longer than libsrtp's 1500 bytes
            self.failures += 1
            if self.failures in (1, 10, 100, 1000) or self.failures % 10000 == 0:
                logger.warning(
                    "! SDES-SRTP authentication failed %d time(s): packet dropped", self.failures
                )
            return None
