"""Moved: the cache data lives in `genmotion.kv.protocol` (kept for one release; import from there)."""

from genmotion.kv.protocol import *  # noqa: F403
from genmotion.kv.protocol import __all__  # noqa: F401
