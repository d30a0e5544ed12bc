"""Using a trained checkpoint: encode, decode, find shapes, write clouds.

Clouds written to disk are in the *evaluation frame* of the data
(:class:`~pointcloud_sivae.data.normalization.EvaluationFrame`: source coordinates for
normalisation ``none``/``global``; radius 0.5 for per-shape normalisations), so PLY
files line up with the ShapeNet data they came from; the model reads and writes the
*model frame*.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from pointcloud_sivae.models.latent_density import (AGGREGATED_POSTERIOR, MIXTURES, AggregatedPosterior, PosteriorGMM,
                                                     Sampler, posterior_draws)
from pointcloud_sivae.runs.checkpoint import load_model, resolve_checkpoint_path
from pointcloud_sivae.data.categories import dataset_category
from pointcloud_sivae.data.prepared import category_names, load_categories, load_split
from pointcloud_sivae.data.normalization import EvaluationFrame
from pointcloud_sivae.utils.ply import read_points, write_ply
from pointcloud_sivae.utils.runtime import select_device


class ShapeNotFoundError(ValueError):
    """A shape id is not in the prepared data; the message shows valid ids."""


class Inference:
    """A model rebuilt from its checkpoint alone, with its data's normalisation.

    A model trained on several categories (``categories``) serves each: the ``category`` argument of
    :meth:`split`, :meth:`training_clouds`, :meth:`latents` and the posteriors' methods selects one
    (its shapes, its training posteriors, a mixture fitted to them); ``None`` means the union.

    Args:
        checkpoint: run folder or ``.pt``.
        device: ``auto``, ``cpu``, ``cuda``...
        data_root: prepared data root for looking up shapes by id (default: the run's).
    """

    def __init__(self, checkpoint, device: str = "auto", data_root: str | None = None):
        self.device = select_device(device)
        self.checkpoint = resolve_checkpoint_path(checkpoint)
        self.model, self.state = load_model(self.checkpoint, self.device)
        self.config = self.state["config"]
        self.manifest = self.state["manifest"]
        self.normalization = self.manifest["normalization"]
        self.num_points = self.model.num_points
        self.data_root = data_root or self.config["data"]["data_root"]
        self.frame = EvaluationFrame.of(self.normalization)  # model frame <-> evaluation frame
        self.categories = category_names(self.config["data"]["category"])  # one, or several trained together
        self._gmm: dict[tuple, PosteriorGMM] = {}  # ex-post mixtures by sampler, component count, category
        self._posteriors: dict[str | None, tuple[torch.Tensor, torch.Tensor]] = {}  # of the training split
        self._aggregated: dict[str | None, AggregatedPosterior] = {}

    def category_key(self, category: str | None) -> str | None:
        """``None`` (the whole training set) for no category or a one-category model's own; else the
        canonical name of one of the model's categories.

        Raises:
            ValueError: a category the model was not trained on (names the ones it was).
        """
        if category is None:
            return None
        name = dataset_category(category)
        if name not in self.categories:
            raise ValueError(f"--category {category}: the model of {self.checkpoint} was trained on "
                             f"{', '.join(self.categories)}; choose one of them")
        return None if len(self.categories) == 1 else name

    def split(self, name: str, root: str | None = None, category: str | None = None):
        """A prepared split at the model's point count: every cloud's fixed subset when the data
        has more points (the run's ``data.subset_seed``, as its validation used), else as prepared.

        Args:
            name: ``train``, ``val`` or ``test``.
            root: another prepared set (with ``category``, its category); default the run's data.
            category: with the run's data, one of the model's categories (default: all of them).

        Returns:
            A :class:`~pointcloud_sivae.data.PreparedSplit`; ``subset`` says which points were kept.

        Raises:
            ValueError: the data has fewer points per cloud than the model outputs.
            MissingDataError: no prepared data there.
        """
        options = {"num_points": self.num_points, "subset_seed": self.config["data"].get("subset_seed", 0),
                   "asked_by": f"the model of {self.checkpoint}"}
        if root is not None:
            return load_split(root, category or self.categories[0], name, **options)
        data = load_categories(self.data_root, self.config["data"]["category"], name, **options)
        key = self.category_key(category)
        return data if key is None else data.of_category(key)

    def training_clouds(self, category: str | None = None) -> np.ndarray | None:
        """(T, N, 3) float32 training clouds (fixed subsets at the model's N, model frame): the
        baseline of the copying statistics (:mod:`pointcloud_sivae.metrics.novelty`); None when the
        training split holds no shape.

        Raises:
            MissingDataError: the run's prepared training split is not there.
        """
        train = self.split("train", category=category)
        return train.points.numpy() if train.ids else None

    # model
    @torch.no_grad()
    def encode(self, points: np.ndarray) -> torch.Tensor:
        """Posterior means (M, Z) of model-frame clouds (M, N, 3)."""
        return self.model.posterior_means(torch.from_numpy(np.asarray(points, np.float32)).to(self.device))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Model-frame clouds (M, N, 3) of latents (M, Z)."""
        return self.model.decode_chunked(z).cpu().numpy()

    def prior(self, n: int, seed: int, temperature: float = 1.0) -> torch.Tensor:
        """``n`` codes (n, Z) from the prior ``N(0, (temperature * prior_std)^2 I)``, fixed by ``seed``."""
        g = torch.Generator(device=self.device).manual_seed(seed)
        return temperature * self.model.sample_prior(n, generator=g)

    def latents(self, n: int, seed: int, sampler: Sampler = Sampler(), category: str | None = None) -> torch.Tensor:
        """``n`` latent codes (n, Z) from ``sampler``: the prior (:meth:`prior`, at the sampler's
        temperature), ``gmm`` or ``gmm-aggregate`` (:meth:`posterior_gmm` with its components), or
        ``aggregated-posterior`` (:meth:`aggregated_posterior`), fixed by ``seed``.

        With ``category`` (a model of several categories), the posterior samplers use that category's
        training posteriors only.

        Raises:
            ValueError: more components than training shapes, or the prior asked for one category of
                several (the prior is shared by all; names the samplers that take a category).
            MissingDataError: a sampler other than the prior without the run's prepared training split.
        """
        key = self.category_key(category)
        if sampler.name == "prior":
            if key is not None:
                raise ValueError(f"--category {key} with --sampler prior: the prior is shared by the model's "
                                 f"categories ({', '.join(self.categories)}); draw one category's shapes with "
                                 f"--sampler {' or '.join(MIXTURES)} or {AGGREGATED_POSTERIOR} (fitted to its "
                                 "training posteriors), or leave --category out")
            return self.prior(n, seed, sampler.temperature)
        if sampler.name == AGGREGATED_POSTERIOR:
            return self.aggregated_posterior(key).sample(n, seed).to(self.device)
        return self.posterior_gmm(sampler.components, sampler.name, key).sample(n, seed).to(self.device)

    def train_posteriors(self, category: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The posteriors ``(mu, logvar)``, each (M, Z), of the M non-empty training clouds (each
        cloud's fixed subset at the model's N), of one ``category`` or all; computed once and kept.

        Raises:
            MissingDataError: the run's prepared training split is not there.
        """
        key = self.category_key(category)
        if key not in self._posteriors:
            data = self.split("train", category=key).nonempty()
            clouds = torch.from_numpy(data.points.numpy().astype(np.float32)).to(self.device)
            self._posteriors[key] = self.model.posteriors(clouds)
        return self._posteriors[key]

    def aggregated_posterior(self, category: str | None = None) -> AggregatedPosterior:
        """The training split's aggregated posterior (:class:`AggregatedPosterior`), of one ``category`` or all.

        Raises:
            MissingDataError: the run's prepared training split is not there.
        """
        key = self.category_key(category)
        if key not in self._aggregated:
            self._aggregated[key] = AggregatedPosterior.of(*self.train_posteriors(key))
        return self._aggregated[key]

    def posterior_gmm(self, components: int, sampler: str = "gmm", category: str | None = None) -> PosteriorGMM:
        """The ex-post Gaussian mixture (:class:`PosteriorGMM`, ``random_state`` 0) of the training
        split (each cloud's fixed subset at the model's N): fitted to the posterior means (``gmm``)
        or to draws from the posteriors, the aggregated posterior (``gmm-aggregate``,
        :func:`~pointcloud_sivae.models.latent_density.posterior_draws`); fitted once per sampler and
        ``components`` and kept.

        Raises:
            ValueError: ``sampler`` is not a mixture, or more components than codes.
        """
        if sampler not in MIXTURES:
            raise ValueError(f"{sampler!r} is not a mixture sampler; use {' or '.join(MIXTURES)}")
        key = self.category_key(category)
        if (sampler, components, key) not in self._gmm:
            mu, logvar = self.train_posteriors(key)
            codes = mu if sampler == "gmm" else posterior_draws(mu, logvar)
            self._gmm[sampler, components, key] = PosteriorGMM.fit(codes, components, seed=0)
        return self._gmm[sampler, components, key]

    # shapes
    def category_splits(self, name: str) -> dict[str, list[str]]:
        """The model ids of each split of one of the model's categories, from the stored manifest."""
        return self.manifest.get("per_category", {}).get(name, self.manifest)["splits"]

    def shape(self, spec: str, resample: bool = False, seed: int = 0) -> tuple[str, np.ndarray]:
        """A model-frame cloud (N, 3) named by a dataset id (searched in train, val, test), by
        ``<category>:<id>`` (a model of several categories; e.g. ``bench:1a40eaf5``), or by a file path.

        Args:
            resample: a file with more points than the model's N is reduced to a uniform
                random subset of N points (seeded); without it a mismatch is an error.

        Returns:
            ``(label, cloud)``: the label names the split (and, for several categories, the category).

        Raises:
            ShapeNotFoundError: neither a file nor an id of the prepared data (of that category).
            ValueError: a file with a different number of points (and no ``resample``), or a category
                the model was not trained on.
        """
        path = Path(spec)
        if path.suffix and path.exists():
            pts = read_points(path)
            if len(pts) != self.num_points:
                if not resample or len(pts) < self.num_points:
                    raise ValueError(
                        f"mismatched point counts: {path} has {len(pts)} points, the model expects "
                        f"{self.num_points}" + ("; pass --resample to use a uniform random subset"
                                                if len(pts) > self.num_points else "")
                    )
                pts = pts[np.random.default_rng(seed).choice(len(pts), self.num_points, replace=False)]
            return path.stem, self.frame.to_model(pts[None])[0]
        names, model_id = self.categories, spec
        if ":" in spec and not path.exists():
            head, model_id = spec.split(":", 1)
            names = [self.category_key(head) or self.categories[0]]
        for name in names:
            for split in ("train", "val", "test"):
                if model_id in self.category_splits(name).get(split, []):
                    data = self.split(split, category=name)
                    label = f"{split}:{model_id}" if len(self.categories) == 1 else f"{name}:{split}:{model_id}"
                    return label, data.points[data.ids.index(model_id)].numpy()
        where = "/".join(names)
        several = len(self.categories) > 1
        examples = ", ".join(f"{name}:{i}" if several else i for name in names
                             for i in self.category_splits(name).get("test", [])[:2])
        raise ShapeNotFoundError(
            f"{spec!r} is neither a point-cloud file nor a model id of the prepared {where} data "
            f"(ids are listed in {Path(self.data_root) / where.split('/')[0] / 'manifest.json'}"
            f"{' and beside it' if len(names) > 1 else ''}, e.g. {examples})"
        )


def write_clouds(out_dir: Path, clouds: dict[str, np.ndarray], names: list[str], meta: dict) -> None:
    """Write ``clouds.npz`` (every array, evaluation frame), one PLY per cloud and ``meta.json``.

    Args:
        clouds: name -> (K, N, 3) arrays; PLY files are ``<name>_<names[k]>.ply``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "clouds.npz", **clouds, names=np.array(names, dtype=str))
    for key, arr in clouds.items():
        for k, name in enumerate(names):
            write_ply(out_dir / f"{key}_{name}.ply", arr[k])
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
