"""Fixtures for the command tests: an isolated home and a fake OS-command runner (what
`logs` asks the service manager for its journal hint)."""

from __future__ import annotations

from tests.support.service_fakes import home, runner

__all__ = ("home", "runner")
