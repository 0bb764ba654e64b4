"""Fixtures for the service tests: a fake OS-command runner and an isolated home."""

from __future__ import annotations

from tests.support.service_fakes import home, runner

__all__ = ("home", "runner")
