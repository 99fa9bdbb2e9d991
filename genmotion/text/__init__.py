"""genmotion.text: prompt encoding with the packaged all-MiniLM-L6-v2 (pure-torch forward, cached).

Importing it loads neither torch nor the model; the encoder loads on its first uncached prompt.
The torch module itself is `genmotion.text.minilm.MiniLM`.
"""

from genmotion.text.disk_cache import default_cache_dir
from genmotion.text.encoder import CacheStats, PromptEmbedding, PromptEncoder
from genmotion.text.loading import DISTRIBUTION, MiniLMFiles, find_minilm

__all__ = [
    "DISTRIBUTION",
    "CacheStats",
    "MiniLMFiles",
    "PromptEmbedding",
    "PromptEncoder",
    "default_cache_dir",
    "find_minilm",
]
