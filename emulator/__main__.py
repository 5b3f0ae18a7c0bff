"""``kurento-emulator``: start the server and run until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from emulator import __version__
from emulator.settings import Settings
from emulator.transport.server import EmulatorServer

logger = logging.getLogger("emulator")


def parse_args(argv: Sequence[str] | None) -> dict[str, Any]:
    """Command-line options as Settings overrides (only those given)."""
    parser = argparse.ArgumentParser(
        prog="kurento-emulator", description="A Kurento Media Server 7.3.0 stand-in."
    )
    parser.add_argument("-v", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--host", help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, help="ws:// port (default 8888)")
    parser.add_argument("--secure-port", type=int, help="wss:// port (default 8433)")
    parser.add_argument("--no-ws", action="store_true", help="turn the ws:// listener off")
    parser.add_argument("--no-wss", action="store_true", help="turn the wss:// listener off")
    parser.add_argument("--path", help="WebSocket path (default kurento)")
    parser.add_argument("--certificate", help="PEM with certificate and key for wss://")
    parser.add_argument("--gc-period", type=float, help="garbageCollectorPeriod in seconds")
    parser.add_argument("--min-port", type=int, help="lowest media UDP port (default 1024)")
    parser.add_argument("--max-port", type=int, help="highest media UDP port (default 65535)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    args = vars(parser.parse_args(argv))
    overrides = {k: v for k, v in args.items() if v is not None and k not in ("no_ws", "no_wss")}
    if args["no_ws"]:
        overrides["port"] = None
    if args["no_wss"]:
        overrides["secure_port"] = None
    return overrides


async def serve_forever(settings: Settings) -> None:
    """Run the server until a stop signal, then shut down in order."""
    server = EmulatorServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("stopping: releasing every object and closing listeners")
    await server.stop()
    logger.info("Kurento emulator stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    overrides = parse_args(argv)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"kurento-emulator: invalid configuration:\n{exc}", file=sys.stderr)  # noqa: T201
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    asyncio.run(serve_forever(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
