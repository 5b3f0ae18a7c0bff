"""H264 ``profile-level-id`` (RFC 6184 8.1) as GStreamer reads it, and which stream a negotiated
H264 payload type can carry.

KMS's SDP agent takes an offered H264 payload type by its rtpmap name alone and copies the
offered fmtp into the answer; the profile only matters when media flows, where ``rtph264pay``
turns a sink's ``profile-level-id`` into the caps it accepts: its own profile or
constrained-baseline (a subset of every other profile), and, unless the fmtp says
``level-asymmetry-allowed=1``, no level above its own. A stream those caps refuse is transcoded
by ``agnosticbin``; here it steers which of a sink's H264 payload types a source's packets take.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.sdp import Codec

# gst_codec_utils_h264_get_profile: profile_idc and the constraint_set flags that refine it
_PROFILES = {66: "baseline", 77: "main", 88: "extended", 100: "high", 110: "high-10"}
_PROFILES.update({122: "high-4:2:2", 244: "high-4:4:4", 44: "cavlc-4:4:4-intra"})
_CONSTRAINT_SET1 = 0x40
_CONSTRAINT_SET3 = 0x10
_CONSTRAINT_SET4 = 0x08
_CONSTRAINT_SET5 = 0x04


@dataclass(frozen=True, slots=True)
class H264Profile:
    """A profile name as GStreamer caps say it, and the level as ``level_idc`` (1b: 9)."""

    profile: str
    level: int

    @classmethod
    def parse(cls, profile_level_id: str) -> H264Profile | None:
        """From the six hex digits of ``profile-level-id``; None when they are not that."""
        text = profile_level_id.strip()
        if len(text) != 6:
            return None
        try:
            profile_idc, constraints, level_idc = bytes.fromhex(text)
        except ValueError:
            return None
        return cls.from_bytes(profile_idc, constraints, level_idc)

    @classmethod
    def from_bytes(cls, profile_idc: int, constraints: int, level_idc: int) -> H264Profile | None:
        """From the first three bytes of a sequence parameter set (what ``profile-level-id``
        writes in hex); None for a profile GStreamer does not name."""
        name = _PROFILES.get(profile_idc)
        if name is None:
            return None
        if profile_idc == 66 and constraints & _CONSTRAINT_SET1:
            name = "constrained-baseline"
        elif profile_idc == 100 and constraints & _CONSTRAINT_SET4:
            name = "constrained-high" if constraints & _CONSTRAINT_SET5 else "progressive-high"
        elif profile_idc in (110, 122, 244) and constraints & _CONSTRAINT_SET3:
            name += "-intra"
        # level 1b: level_idc 11 with constraint_set3 in the Baseline/Main/Extended profiles
        level_1b = level_idc == 11 and profile_idc in (66, 77, 88)
        level = 9 if level_1b and constraints & _CONSTRAINT_SET3 else level_idc
        return cls(name, level)

    def carries(self, stream: H264Profile, level_asymmetry: bool) -> bool:
        """Whether a payload type of this profile takes a stream of ``stream``'s (rtph264pay's
        caps: the same profile or constrained-baseline; levels above ours only with
        ``level-asymmetry-allowed``)."""
        if stream.profile not in (self.profile, "constrained-baseline"):
            return False
        return level_asymmetry or stream.level <= self.level


def codec_profile(codec: Codec) -> H264Profile | None:
    """The profile an H264 payload type declares; None when it declares none or none readable
    (RFC 6184 then means Baseline 1.0, but rtph264pay, without the field, restricts nothing)."""
    value = _parameters(codec).get("profile-level-id")
    return H264Profile.parse(value) if value else None


def carries(sink: Codec, source: Codec) -> bool:
    """Whether the sink's H264 payload type takes the stream the source's declares (True when
    either declares no readable profile: nothing to go by, as for rtph264pay)."""
    sink_profile, stream = codec_profile(sink), codec_profile(source)
    if sink_profile is None or stream is None:
        return True
    asymmetry = _parameters(sink).get("level-asymmetry-allowed") == "1"
    return sink_profile.carries(stream, asymmetry)


def _parameters(codec: Codec) -> dict[str, str]:
    # RFC 4566 6: fmtp parameter names are case-insensitive (some SIP phones write them upper)
    return {key.lower(): value for key, value in codec.parameters().items()}


def same_profile(sink: Codec, source: Codec) -> bool:
    """Whether both declare the same profile (levels aside): the best payload type for a stream,
    ahead of one that merely carries it (a receiver may know only the exact profile)."""
    sink_profile, stream = codec_profile(sink), codec_profile(source)
    return (
        sink_profile is not None and stream is not None and sink_profile.profile == stream.profile
    )
