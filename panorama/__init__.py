"""genmotion.panorama: CubeComposer (Li et al., CVPR 2026), a 360-degree equirect video from a perspective
video and its camera path, generated one cube face x one time window per call, exported for VR players."""

from genmotion.panorama.config import OUTPUT_SIZES, CubeComposerConfig, SampleConfig
from genmotion.panorama.data import Trajectory
from genmotion.panorama.pipeline import CubeComposerPipeline, PanoramaChunk, PanoramaResult

__all__ = [
    "OUTPUT_SIZES",
    "CubeComposerConfig",
    "CubeComposerPipeline",
    "PanoramaChunk",
    "PanoramaResult",
    "SampleConfig",
    "Trajectory",
]
