"""`genmotion.load("riganything-toy").rig(mesh)`: the RigAnything pipeline (Liu et al., 2025). It samples
surface points, decodes skeletons joint by joint (streamed), keeps the most likely of `num_samples`,
predicts the skin on the mesh vertices, post-processes it as released, and returns a `RigResult`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from genmotion.checkpoint import load_weights, save_pretrained
from genmotion.config import from_dict, to_dict
from genmotion.errors import UsageError
from genmotion.pipeline import Chunk, Pipeline, Result
from genmotion.rigging.config import RigModelConfig, RigSamplingConfig
from genmotion.rigging.export import MeshVisual, format_for, visual_of, write_rig
from genmotion.rigging.geometry import normalisation
from genmotion.rigging.meshio import check_mesh, cluster_simplify, load_mesh, sample_surface, vertex_normals
from genmotion.rigging.model import RigAnything
from genmotion.rigging.postprocess import postprocess_skin, transfer_weights
from genmotion.rigging.sampler import JointStep, SampledSkeletons, joint_steps, skin_weights
from genmotion.rigging.skeleton import Skeleton
from genmotion.rigging.train import RIG_KIND

__all__ = ["JointChunk", "RigAnythingPipeline", "RigChunk", "RigResult"]

SKIN_VERTICES = 20_000  # denser meshes are skinned on a grid-simplified copy, then transferred


@dataclass(frozen=True, kw_only=True)
class JointChunk(Chunk):
    """Joint `index` of every sample: positions (R, 3) in mesh units, parents (R,) (`index` = stop), and
    which samples were still growing (R,)."""

    positions: np.ndarray
    parents: np.ndarray
    alive: np.ndarray


@dataclass(frozen=True, kw_only=True)
class RigChunk(Chunk):
    """The finished rig (the last chunk of a stream)."""

    result: RigResult


@dataclass(frozen=True, kw_only=True)
class RigResult(Result):
    """A rigged mesh: joints (J, 3) in mesh units, parents (J,) (-1 at joint 0), weights (V, J) per vertex,
    the mesh (vertices (V, 3), faces (F, 3), normals (V, 3), its look), and every sample's score (R,)."""

    joints: np.ndarray
    parents: np.ndarray
    weights: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    visual: MeshVisual
    scores: np.ndarray
    chosen: int

    @property
    def skeleton(self) -> Skeleton:
        return Skeleton(self.joints, self.parents)

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    def save(self, path: str | Path, fmt: str | None = None) -> Path:
        """Write the rig (glb from .glb, bvh from .bvh, RigNet rig_info from .txt), atomically."""
        kind = format_for(path, fmt)
        return write_rig(path, kind, self.vertices, self.faces, self.normals, self.skeleton, self.weights, self.visual)


def _as_mesh(mesh: Any, max_faces: int) -> Any:
    import trimesh

    if isinstance(mesh, (str, Path)):
        return load_mesh(mesh, max_faces)
    if isinstance(mesh, tuple) and len(mesh) == 2:
        mesh = trimesh.Trimesh(np.asarray(mesh[0], dtype=np.float64), np.asarray(mesh[1]), process=False)
    if not isinstance(mesh, trimesh.Trimesh):
        raise UsageError(
            f"cannot rig a {type(mesh).__name__}", fix="pass a path, a trimesh.Trimesh or (vertices, faces)"
        )
    return check_mesh(mesh, "the mesh", max_faces)


class RigAnythingPipeline(Pipeline):
    """Skeleton + skin for any mesh; `rig(mesh)` is `generate(mesh)`."""

    kind = RIG_KIND
    config_keys = frozenset({"kind", "net", "sampling", "held_out"})

    def __init__(self, model: RigAnything, sampling: RigSamplingConfig | None = None) -> None:
        super().__init__(model)
        self.sampling = sampling or RigSamplingConfig()

    @property
    def config(self) -> RigModelConfig:
        return self.model.config

    @classmethod
    def _from_checkpoint(cls, directory: Path, config: Mapping[str, Any]) -> RigAnythingPipeline:
        model = RigAnything(from_dict(RigModelConfig, config["net"], prefix="net"))
        load_weights(model, directory)
        return cls(model, from_dict(RigSamplingConfig, config.get("sampling", {}), prefix="sampling"))

    def save_pretrained(self, directory: str | Path, card: str | None = None) -> Path:
        cfg = {"kind": RIG_KIND, "net": to_dict(self.config), "sampling": to_dict(self.sampling)}
        return save_pretrained(directory, self.model, cfg, card=card, dtype=torch.bfloat16)

    def rig(self, mesh: Any, **kwargs: Any) -> RigResult:
        """Rig `mesh` (a path, a trimesh.Trimesh or (vertices, faces)); see `stream` for the options."""
        result = self.generate(mesh, **kwargs)
        assert isinstance(result, RigResult)
        return result

    def stream(
        self,
        mesh: Any,
        *,
        num_samples: int | None = None,
        max_joints: int | None = None,
        seed: int | None = None,
        generator: torch.Generator | None = None,
        sample_steps: int | None = None,
        temperature: float | None = None,
        max_faces: int = 1_000_000,
    ) -> Iterator[JointChunk | RigChunk]:
        """Yield a `JointChunk` per decoded joint step, then the `RigChunk`. `num_samples` skeletons are drawn
        and the most likely kept; `max_joints` caps the joint count (at most the model's)."""
        s = self.sampling
        rows = s.num_samples if num_samples is None else num_samples
        cap = self.config.max_joints if max_joints is None else max_joints
        if rows < 1:
            raise UsageError(f"num_samples must be >= 1, got {rows}")
        if not 2 <= cap <= self.config.max_joints:
            raise UsageError(f"max_joints must be in [2, {self.config.max_joints}], got {cap}")
        cfg = dataclasses.replace(
            s,
            num_samples=rows,
            sample_steps=sample_steps or s.sample_steps,
            temperature=s.temperature if temperature is None else temperature,
        )
        gen = self.make_generator(seed, generator)
        return self._stream(_as_mesh(mesh, max_faces), rows, cap, cfg, gen)

    def _stream(
        self, mesh: Any, rows: int, cap: int, cfg: RigSamplingConfig, gen: torch.Generator
    ) -> Iterator[JointChunk | RigChunk]:
        import time

        start = time.perf_counter()
        V, F = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
        rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        pts, nrm = sample_surface(V, F, self.config.num_points, rng)
        centre, scale = normalisation(pts)
        points = torch.tensor(np.concatenate([(pts - centre) / scale, nrm], 1), dtype=self.dtype, device=self.device)
        sampled: SampledSkeletons | None = None
        for step in joint_steps(self.model, points, cfg, rows, gen, max_joints=cap):
            if isinstance(step, JointStep):
                yield JointChunk(
                    index=step.index,
                    seconds=time.perf_counter() - start,
                    positions=step.positions.float().cpu().numpy() * scale + centre,
                    parents=step.parents.cpu().numpy(),
                    alive=step.alive.cpu().numpy(),
                )
            else:
                sampled = step
        assert sampled is not None
        best = int(torch.argmax(sampled.scores))
        joints = sampled.joints[best].float().cpu().numpy() * scale + centre
        parents = sampled.parents[best].cpu().numpy().astype(np.int64)
        sv, sf = cluster_simplify(V, F, SKIN_VERTICES)
        query = np.concatenate([(sv - centre) / scale, vertex_normals(sv, sf)], axis=1)
        w = (
            skin_weights(
                self.model,
                torch.tensor(query, dtype=self.dtype, device=self.device),
                points,
                sampled.shape_features[best],
                sampled.features[best],
                sampled.joints[best],
                sampled.parents[best],
            )
            .cpu()
            .numpy()
        )
        w = postprocess_skin(w, sf, cfg.skin)
        if len(sv) != len(V):
            w = transfer_weights(sv, w, V)
        result = RigResult(
            seconds=time.perf_counter() - start,
            joints=joints,
            parents=parents,
            weights=w,
            vertices=V,
            faces=F,
            normals=vertex_normals(V, F),
            visual=visual_of(mesh),
            scores=sampled.scores.float().cpu().numpy(),
            chosen=best,
        )
        yield RigChunk(index=len(parents), seconds=result.seconds, result=result)

    def collect(self, chunks: Iterable[Chunk], seconds: float, *args: Any, **kwargs: Any) -> RigResult:
        final = [c for c in chunks if isinstance(c, RigChunk)]
        if not final:
            raise UsageError("the stream ended before the rig was finished")
        r = final[-1].result
        return RigResult(**{**r.__dict__, "seconds": seconds})
