"""Backends: one module each, all meeting `studio.backends.base.Backend`; see `registry` for the catalogue."""
