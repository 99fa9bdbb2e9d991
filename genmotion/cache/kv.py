"""Moved: the cache data lives in `genmotion.kv.buffers` (kept for one release; import from there)."""

from genmotion.kv.buffers import *  # noqa: F403
from genmotion.kv.buffers import __all__  # noqa: F401
