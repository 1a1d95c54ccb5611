"""``acd simulate``: a simulated day through the real state machine (``acd.domain``).

``scenario`` (the day's YAML), ``simulator`` (the discrete-event loop and its figures),
``erlang`` (Erlang C/A where it applies), ``report`` (the text), ``cli``.
"""

from sim.replicate import Replications, replicate
from sim.report import render
from sim.scenario import Scenario, load_scenario, parse_scenario
from sim.simulator import SimResult, Simulation, simulate

__all__ = [
    "Replications",
    "Scenario",
    "SimResult",
    "Simulation",
    "load_scenario",
    "parse_scenario",
    "render",
    "replicate",
    "simulate",
]
