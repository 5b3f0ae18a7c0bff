"""``kurento-emulator-healthcheck``: the image's HEALTHCHECK, like KMS's ``kurento-healthchecker``.

It opens the server's own WebSocket (``ws://127.0.0.1:<port>/<path>``, or ``wss://`` when ``ws://``
is off), sends a JSON-RPC ``ping`` and exits 0 on a ``pong``, 1 on anything else (refused, no answer
within ``--timeout``, an error reply). Port, path, bind address and ``access_token`` come from the
same sources as the server's (flags, ``KMS_*``/``KURENTO_EMULATOR_*`` environment, config files), so
the probe follows whatever the container was started with. It needs no admin listener and no curl
(a missing curl once made every KMS container unhealthy, ``Kurento/kurento-docker`` PR #12).
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.parse
from collections.abc import Sequence

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from emulator.config import ConfigError, load_settings
from emulator.settings import Settings

PING = {"jsonrpc": "2.0", "method": "ping", "params": {"interval": 5000}, "id": 1}


def probe_url(settings: Settings) -> str:
    """The URL the probe opens: loopback when the server binds every address."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    if settings.port is not None:
        url = f"ws://{host}:{settings.port}/{settings.path}"
    elif settings.secure_port is not None:
        url = f"wss://{host}:{settings.secure_port}/{settings.path}"
    else:
        raise ConfigError("both listeners are off (port and secure_port unset): nothing to probe")
    if settings.access_token:
        url += "?" + urllib.parse.urlencode({"access_token": settings.access_token})
    return url


def check(url: str, timeout: float) -> tuple[bool, str]:
    """Ping the server at ``url``; ``(healthy, what happened)``."""
    context = None
    if url.startswith("wss://"):
        # The probe checks liveness of the local server, whose certificate may be self-signed.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    shown = url.split("?", 1)[0]
    try:
        with connect(
            url, open_timeout=timeout, close_timeout=timeout, ssl=context, compression=None
        ) as ws:
            ws.send(json.dumps(PING))
            reply = json.loads(ws.recv(timeout=timeout))
    except TimeoutError:
        return False, f"{shown}: no answer within {timeout:g} s"
    except (OSError, WebSocketException, ValueError) as exc:
        return False, f"{shown}: {exc or type(exc).__name__}"
    result = reply.get("result") if isinstance(reply, dict) else None
    if isinstance(result, dict) and result.get("value") == "pong":
        return True, f"{shown}: pong"
    return False, f"{shown}: unexpected answer {reply!r}"


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0 when the server answers ``ping``, 1 otherwise (Docker reserves 2)."""
    parser = argparse.ArgumentParser(
        prog="kurento-emulator-healthcheck",
        description="Ping the local kurento-emulator over its WebSocket; exit 0 if it answers.",
    )
    parser.add_argument("--url", help="WebSocket URL to probe (default: from the settings)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    url = args.url
    if url is None:
        try:
            url = probe_url(load_settings({}).settings)
        except ConfigError as exc:
            print(f"kurento-emulator-healthcheck: {exc}", file=sys.stderr)  # noqa: T201
            return 1
    healthy, what = check(url, args.timeout)
    print(f"{'healthy' if healthy else 'unhealthy'}: {what}")  # noqa: T201
    return 0 if healthy else 1


if __name__ == "__main__":
    raise SystemExit(main())
