"""genmotion.panorama: CubeComposer (Li et al., CVPR 2026), a 360-degree equirect video from a perspective
video and its camera path, generated one cube face x one time window per call, exported for VR players.

Names are imported on first use, so `genmotion --help` (which imports the CLI module) does not load torch.
"""

from __future__ import annotations

from genmotion.lazy import lazy_attributes

__all__ = [
    "OUTPUT_SIZES",
    "CubeComposerConfig",
    "CubeComposerPipeline",
    "PanoramaChunk",
    "PanoramaResult",
    "SampleConfig",
    "Trajectory",
]

_HOME = {
    "OUTPUT_SIZES": "config",
    "CubeComposerConfig": "config",
    "SampleConfig": "config",
    "Trajectory": "data",
    "CubeComposerPipeline": "pipeline",
    "PanoramaChunk": "pipeline",
    "PanoramaResult": "pipeline",
}


__getattr__ = lazy_attributes(__name__, _HOME)
