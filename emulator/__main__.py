"""``kurento-emulator``: parse the options, load the settings and run the server (``emulator.app``)
until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emulator import __version__
from emulator.app import log_to_stdout, run
from emulator.config import ConfigError, load_settings

logger = logging.getLogger("emulator")


def parse_args(argv: Sequence[str] | None) -> tuple[dict[str, Any], Path | None, Path | None]:
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
    parser.add_argument("--network-interfaces", help="networkInterfaces: comma list (all)")
    parser.add_argument("--capture", help="endpoints captured to pcap: '*', or a regex")
    parser.add_argument("--capture-dir", type=Path, help="folder of the capture files")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--admin-port", type=int, help="admin HTTP port (default 8890)")
    parser.add_argument("--no-admin", action="store_true", help="turn the admin listener off")
    parser.add_argument(
        "--admin-host", help="admin bind address (all; loopback with --fault-injection)"
    )
    parser.add_argument(
        "--shutdown-timeout", type=float, help="seconds a SIGTERM may take (default 10)"
    )
    parser.add_argument(
        "--fault-injection",
        action="store_const",
        const=True,
        help="serve the fault API on the admin listener (/faults, /restart)",
    )
    parser.add_argument("--faults", type=json.loads, help="fault rules from the start (JSON list)")
    parser.add_argument("--fault-seed", type=int, help="seed of the fault injector (default 0)")
    parser.add_argument("--access-token", help="require ?access_token=TOKEN (default: no check)")
    parser.add_argument("--allowed-origins", help="comma list of accepted Origin headers (any)")
    parser.add_argument("--max-sessions", type=int, help="most sessions at once (no limit)")
    parser.add_argument(
        "--max-objects-per-session", type=int, help="most objects per session (no limit)"
    )
    parser.add_argument(
        "--datapath",
        choices=["compiled", "python"],
        help="per-packet forwarding loop (default compiled where built, else python)",
    )
    parser.add_argument(
        "--max-subscriptions-per-session", type=int, help="most subscriptions per session"
    )
    parser.add_argument(
        "--file-roots", help="comma list of folders file:// URIs must lie in (anywhere)"
    )
    parser.add_argument(
        "--media-workers", type=int, help="media worker processes (default 1; 0: one per core)"
    )
    parser.add_argument(
        "-f", "--conf-file", type=Path, help="kurento.conf.json (default /etc/kurento/...)"
    )
    parser.add_argument(
        "-c", "--modules-config-path", type=Path, help="folder holding kurento/*.conf.ini"
    )
    args = vars(parser.parse_args(argv))
    skip = ("no_ws", "no_wss", "no_admin", "conf_file", "modules_config_path")
    overrides = {k: v for k, v in args.items() if v is not None and k not in skip}
    if args["no_ws"]:
        overrides["port"] = None
    if args["no_wss"]:
        overrides["secure_port"] = None
    if args["no_admin"]:
        overrides["admin_port"] = None
    return overrides, args["conf_file"], args["modules_config_path"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    overrides, conf_file, modules_dir = parse_args(argv)
    try:
        loaded = load_settings(overrides, conf_file=conf_file, modules_dir=modules_dir)
    except ConfigError as exc:
        print(f"kurento-emulator: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    settings = loaded.settings
    log_to_stdout(settings)
    logger.info("kurento-emulator %s, effective configuration:", __version__)
    for line in loaded.report():
        logger.info("  %s", line)
    return run(settings)


if __name__ == "__main__":
    raise SystemExit(main())
