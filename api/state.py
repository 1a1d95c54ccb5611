"""What one API app holds: the engine it serves and the resources built around it."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client.registry import CollectorRegistry

from acd.config import Config
from acd.domain.figures import LiveStats
from acd.runtime.engine import Engine
from acd.runtime.metrics import EngineCollector
from api.auth import TokenStore
from api.views import LiveViews


@dataclass
class ApiState:
    engine: Engine
    config: Config
    tokens: TokenStore
    registry: CollectorRegistry
    stats: LiveStats
    collector: EngineCollector
    views: LiveViews
    command_timeout: float = 5.0
    metrics_auth: bool = False
    attached: bool = field(default=False, init=False)

    def attach(self) -> None:
        """Feed the metrics from the engine's events (lifespan start). The stats are the
        engine's own (``engine.stats``), fed by the engine."""
        if not self.attached:
            self.collector.attach()
            self.attached = True

    def detach(self) -> None:
        if self.attached:
            self.collector.detach()
            self.attached = False
