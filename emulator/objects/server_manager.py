"""ServerManager (KMD core): the singleton ``manager_ServerManager`` (protocol.md section 3)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import time
from collections.abc import Callable
from typing import Any

from emulator.objects.media_object import MediaObject
from protocol.errors import ServerManagerErrorKmdNotFound
from protocol.types import complex_value

SERVER_MANAGER_ID = "manager_ServerManager"
KMS_VERSION = "7.3.0"


class ServerManager(MediaObject):
    """Server-wide information: modules, pipelines, sessions, CPU and memory."""

    TYPE = "ServerManager"

    def __init__(
        self,
        *args: Any,
        pipelines: Callable[[], list[MediaObject]],
        sessions: Callable[[], list[str]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._pipelines = pipelines
        self._sessions = sessions

    def get_info(self) -> dict[str, Any]:
        """``ServerInfo``: version, modules with their factories, and ``transactions``."""
        types = self.services.types
        modules = [
            complex_value(
                "ModuleInfo",
                factories=types.factories(module.name),
                generationTime=module.generation_time,
                name=module.name,
                version=module.version,
            )
            for module in types.modules.values()
        ]
        return complex_value(
            "ServerInfo",
            capabilities=["transactions"],
            modules=modules,
            type="KMS",
            version=KMS_VERSION,
        )

    def get_pipelines(self) -> list[MediaObject]:
        """Every live pipeline."""
        return self._pipelines()

    def get_sessions(self) -> list[str]:
        """Session ids, reproducing KMS 7.3.0's bug: N empty strings, then the N ids."""
        sessions = self._sessions()
        return [""] * len(sessions) + sessions

    def get_metadata(self) -> str:
        """kurento.conf.json's ``metadata`` as pretty JSON with string scalars, or ``""``."""
        metadata = self.services.settings.metadata
        if not metadata:
            return ""
        return json.dumps(_stringify(metadata), indent=4) + "\n"

    def get_kmd(self, module_name: str) -> str:
        """A module's KMD document as one line of JSON.

        Raises:
            ServerManagerErrorKmdNotFound: 40500 for an unknown module.
        """
        types = self.services.types
        if module_name not in types.modules:
            known = ", ".join(types.modules)
            raise ServerManagerErrorKmdNotFound(
                f"Module '{module_name}' not found (modules: {known})"
            )
        return json.dumps(types.kmd(module_name), separators=(",", ":"))

    def get_cpu_count(self) -> int:
        """CPUs in this process's affinity mask."""
        return len(os.sched_getaffinity(0))

    async def get_used_cpu(self, interval: int) -> float:
        """Process CPU use over ``interval`` ms, in percent of one core (KMS's scale)."""
        start_cpu, start_wall = time.process_time(), time.monotonic()
        await asyncio.sleep(max(interval, 0) / 1000)
        wall = time.monotonic() - start_wall
        used = time.process_time() - start_cpu
        return 100.0 * used / wall if wall > 0 else 0.0

    def get_used_memory(self) -> int:
        """Resident memory in KiB (VmRSS)."""
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _stringify(node: Any) -> Any:
    # boost::property_tree::write_json writes every scalar as a string.
    if isinstance(node, dict):
        return {str(k): _stringify(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_stringify(v) for v in node]
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)
