"""Prometheus metrics of one server, collected when scraped.

Nothing here runs on the packet path: RTP and SRTP figures are read from the counters that the
streams and transports keep anyway (``MediaServices.totals``), object and session counts from the
MediaSet, port usage from the PortRange. Only the RPC latency histogram is updated per request, by
the RPC dispatcher's observer (``RpcMetrics``, made before the dispatcher and given to it). Each
server has its own ``CollectorRegistry`` (tests run several).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from emulator import __version__
from emulator.dispatch import ServerIdentity
from emulator.faults import FaultController
from emulator.media.services import MediaServices
from emulator.memory import MemoryTrimmer, glibc_heap_usage
from emulator.registry import MediaSet
from emulator.transport.server import WebSocketListener

SampleKey = tuple[str, frozenset[tuple[str, str]]]


class WorkerFigures:
    """The media workers' figures of one scrape, summed over the workers, by sample name and
    labels (their /metrics expositions, fetched by the admin listener just before)."""

    def __init__(self, expositions: Iterable[str] = ()) -> None:
        self.sums: dict[SampleKey, float] = {}
        self.present = False
        for text in expositions:
            self.present = True
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    key = (sample.name, frozenset(sample.labels.items()))
                    self.sums[key] = self.sums.get(key, 0.0) + sample.value

    def get(self, name: str, **labels: str) -> float:
        """The workers' sum of one sample (0 when none has it)."""
        return self.sums.get((name, frozenset(labels.items())), 0.0)

    def label_values(self, name: str, label: str) -> set[str]:
        """The values of ``label`` among the workers' samples called ``name``."""
        return {
            value
            for (sample, labels) in self.sums
            if sample == name
            for key, value in labels
            if key == label
        }


DROP_REASONS = (
    "unvalidated_source",
    "foreign_source",
    "srtp_auth",
    "malformed_stun",
    "malformed_rtp",
    "malformed_rtcp",
    "receive_queue_full",
)
"""Every reason is exposed from the start (at 0), so that alerts and rates need no absent()."""

RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class EmulatorCollector:
    """Gauges and counters read from the live server at scrape time."""

    def __init__(
        self,
        identity: ServerIdentity,
        listener: WebSocketListener,
        media_set: MediaSet,
        media_services: MediaServices,
        faults: FaultController | None,
        memory: MemoryTrimmer,
    ) -> None:
        self.identity = identity
        self.memory = memory
        self.listener = listener
        self.media_set = media_set
        self.media_services = media_services
        self.faults = faults
        self.workers = WorkerFigures()
        """The media workers' figures of the scrape in progress (none without workers)."""

    def collect(self) -> Iterable[Metric]:
        """Every figure of the server (and its media workers'), as Prometheus metric families."""
        media_set = self.media_set
        workers = self.workers
        info = GaugeMetricFamily(
            "kurento_emulator_info", "Version and server id", labels=["version", "server_id"]
        )
        info.add_metric([__version__, self.identity.id], 1)
        yield info
        yield GaugeMetricFamily(
            "kurento_ready",
            "1 while the WebSocket listeners accept",
            value=int(self.listener.accepting),
        )
        yield GaugeMetricFamily(
            "kurento_connections", "Open WebSocket connections", value=len(self.listener.links)
        )
        yield GaugeMetricFamily(
            "kurento_sessions",
            "Sessions the server knows",
            value=len(media_set.activity.sessions()),
        )
        counts: dict[str, float] = dict(media_set.count_by_type())
        for type_name in workers.label_values("kurento_elements", "type"):
            count = workers.get("kurento_elements", type=type_name)
            counts[type_name] = counts.get(type_name, 0) + count
        yield GaugeMetricFamily(
            "kurento_pipelines", "Live MediaPipelines", value=counts.get("MediaPipeline", 0)
        )
        objects = GaugeMetricFamily(
            "kurento_elements", "Live media objects by type (pipelines included)", labels=["type"]
        )
        for type_name, count in sorted(counts.items()):
            objects.add_metric([type_name], count)
        yield objects
        yield CounterMetricFamily(
            "kurento_events_sent", "onEvent notifications delivered", value=media_set.events_sent
        )
        yield from _runtime_figures()
        yield CounterMetricFamily(
            "kurento_memory_trims",
            "Times freed heap memory was given back to the OS after releases (malloc_trim)",
            value=self.memory.trims + workers.get("kurento_memory_trims_total"),
        )
        usage = self.media_services.ports.usage()
        ports = GaugeMetricFamily(
            "kurento_media_ports",
            f"UDP ports of the media range {usage.low}-{usage.high}",
            labels=["state"],
        )
        if workers.present:  # the range is the workers' (their slices); this process uses none
            ports.add_metric(["in_use"], workers.get("kurento_media_ports", state="in_use"))
            ports.add_metric(["free"], workers.get("kurento_media_ports", state="free"))
        else:
            ports.add_metric(["in_use"], usage.in_use)
            ports.add_metric(["free"], usage.free)
        yield ports
        yield from self._media(workers)

    def _media(self, workers: WorkerFigures) -> Iterable[Metric]:
        """RTP, SRTP and fault figures: this process's and its workers'."""
        totals = self.media_services.totals()
        packets = CounterMetricFamily(
            "kurento_rtp_packets", "RTP packets by direction and kind", labels=["direction", "kind"]
        )
        octets = CounterMetricFamily(
            "kurento_rtp_bytes",
            "RTP payload bytes by direction and kind",
            labels=["direction", "kind"],
        )
        for direction in ("in", "out"):
            for kind in ("audio", "video"):
                key = (direction, kind)
                labels = {"direction": direction, "kind": kind}
                packets.add_metric(
                    [direction, kind],
                    totals.packets.get(key, 0) + workers.get("kurento_rtp_packets_total", **labels),
                )
                octets.add_metric(
                    [direction, kind],
                    totals.octets.get(key, 0) + workers.get("kurento_rtp_bytes_total", **labels),
                )
        yield packets
        yield octets
        yield CounterMetricFamily(
            "kurento_srtp_failures",
            "SRTP/SRTCP packets that failed authentication",
            value=totals.srtp_failures + workers.get("kurento_srtp_failures_total"),
        )
        dropped = CounterMetricFamily(
            "kurento_media_dropped",
            "Media datagrams dropped on receipt, by reason (unvalidated_source: not from the "
            "ICE-validated address; foreign_source: not from the SDP's; srtp_auth; malformed_*)",
            labels=["reason"],
        )
        for reason in DROP_REASONS:
            dropped.add_metric(
                [reason],
                totals.drops.get(reason, 0)
                + workers.get("kurento_media_dropped_total", reason=reason),
            )
        yield dropped
        if self.faults is not None:
            injected = CounterMetricFamily(
                "kurento_faults_injected",
                "Faults applied by rule kind (rtp: endpoint media impaired)",
                labels=["kind"],
            )
            for kind, count in self.faults.injected.items():
                extra = workers.get("kurento_faults_injected_total", kind=kind)
                injected.add_metric([kind], count + extra)
            yield injected
            rtp = CounterMetricFamily(
                "kurento_fault_rtp_packets",
                "RTP packets dropped or delayed by fault injection",
                labels=["action"],
            )
            for action, count in (
                ("dropped", self.faults.impairments.dropped),
                ("delayed", self.faults.impairments.delayed),
            ):
                extra = workers.get("kurento_fault_rtp_packets_total", action=action)
                rtp.add_metric([action], count + extra)
            yield rtp


def _runtime_figures() -> Iterable[Metric]:
    """Threads and asyncio tasks of this process: what a leak shows in first (the soak reads
    them; prometheus_client's ProcessCollector adds fds and memory)."""
    yield GaugeMetricFamily(
        "kurento_threads", "Threads of the server process", value=threading.active_count()
    )
    heap = glibc_heap_usage()
    if heap is not None:
        figures = GaugeMetricFamily(
            "kurento_heap_bytes",
            "glibc malloc heap of the server process (mallinfo2): in_use, free (kept by glibc),"
            " heap (size of the heaps, every arena), mmap (large blocks mapped on their own)",
            labels=["kind"],
        )
        for kind, value in heap.items():
            figures.add_metric([kind], value)
        yield figures
    try:
        tasks = len(asyncio.all_tasks())
    except RuntimeError:  # scraped outside the event loop (a test reading exposition())
        return
    yield GaugeMetricFamily("kurento_asyncio_tasks", "asyncio tasks not done", value=tasks)


class RpcMetrics:
    """Time to reply and errors by JSON-RPC method: the RPC dispatcher's observer."""

    def __init__(self, methods: Iterable[str]) -> None:
        self.methods = frozenset(methods)
        self.duration = Histogram(
            "kurento_rpc_duration_seconds",
            "Time from request to reply, by JSON-RPC method",
            ["method"],
            registry=None,
            buckets=RPC_BUCKETS,
        )
        self.errors = Counter(
            "kurento_rpc_errors",
            "Requests answered with an error, by method and code",
            ["method", "code"],
            registry=None,
        )

    def observe(self, method: str, seconds: float, code: int | None) -> None:
        """One request answered."""
        # Method names come from clients: unknown ones share a label, to bound cardinality.
        label = method if method in self.methods else "other"
        self.duration.labels(label).observe(seconds)
        if code is not None:
            self.errors.labels(label, str(code)).inc()


class ServerMetrics:
    """The registry of one server: the live figures and the RPC metrics."""

    def __init__(self, collector: EmulatorCollector, rpc: RpcMetrics) -> None:
        self.collector = collector
        self.registry = CollectorRegistry()
        self.registry.register(collector)
        # process_open_fds, process_resident_memory_bytes, process_cpu_seconds_total... (Linux)
        ProcessCollector(registry=self.registry)
        self.registry.register(rpc.duration)
        self.registry.register(rpc.errors)

    def exposition(self, workers: Iterable[str] | None = None) -> bytes:
        """The text exposition format of every metric, the media workers' (their expositions,
        just fetched) added to this process's."""
        self.collector.workers = WorkerFigures(workers or ())
        return generate_latest(self.registry)
