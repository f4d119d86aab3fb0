"""Governed agents: tools over connectors, role limits, human approval of writes, an audit trail."""

from spravka.agents.runner import TYPE, Agents, RunResult
from spravka.agents.spec import AgentSpec, ConnectorSpec, load_folder

__all__ = ["TYPE", "AgentSpec", "Agents", "ConnectorSpec", "RunResult", "load_folder"]
