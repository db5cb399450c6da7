"""The backend catalogue lives in the core (`studio.core.catalogue`); this name stays for backends and
plugins written against it."""

from studio.core.catalogue import (
    ALL_TASKS,
    REGISTRY,
    TEXT_TASKS,
    BackendSpec,
    get_spec,
    register,
)

__all__ = ["ALL_TASKS", "REGISTRY", "TEXT_TASKS", "BackendSpec", "get_spec", "register"]
