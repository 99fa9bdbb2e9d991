"""Moved: the cache data lives in `genmotion.kv.layered` (kept for one release; import from there)."""

from genmotion.kv.layered import *  # noqa: F403
from genmotion.kv.layered import __all__  # noqa: F401
