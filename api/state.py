"""What one API app holds: the engine it serves and the resources built around it."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.registry import CollectorRegistry

from acd.config import Config
from acd.runtime.engine import Engine
from acd.runtime.metrics import EngineCollector
from api.auth import TokenStore
from api.guards import FailedAuth
from api.views import LiveViews


@dataclass
class ApiState:
    engine: Engine
    config: Config
    tokens: TokenStore
    registry: CollectorRegistry
    collector: EngineCollector
    views: LiveViews
    command_timeout: float = 5.0
    metrics_auth: bool = False
    failed_auth: FailedAuth = field(default_factory=FailedAuth)
    attached: bool = field(default=False, init=False)

    def attach(self) -> None:
        """Feed the metrics' histograms from the engine's facts (lifespan start); the rest
        is read from the engine at scrape time."""
        if not self.attached:
            self.collector.attach()
            self.attached = True

    def detach(self) -> None:
        if self.attached:
            self.collector.detach()
            self.attached = False
