"""Configuration: one dataclass per concern, merged from defaults, a file and CLI flags.

Precedence: dataclass defaults < ``--preset NAME`` (a TOML file shipped in
``pointcloud_sivae/runs/presets/``) < ``--config`` file (JSON or TOML, one table per
section) < command-line flags. Every field of every section is a flag named after
it (``z_dim`` -> ``--z-dim``); field names are unique across sections. Unknown
sections or keys are errors. The resolved config is written beside the run as
``config.json`` and stored in every checkpoint.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path

from pointcloud_sivae.data.prepared import SUBSET_RULE, category_names, check_point_count
from pointcloud_sivae.models.pointnet import ENCODER_ORDERS, ENCODER_POOLS
from pointcloud_sivae.objectives import IntroObjective, SoftIntroObjective, VAEObjective
from pointcloud_sivae.ops.chamfer import CHOICES as CHAMFER_CHOICES


# ----- config fields: declared once with their help, choices and range -----

def option(default, help: str, *, choices: tuple | None = None, min: float | None = None,
           max: float | None = None, open_min: bool = False, open_max: bool = False, increasing: bool = False):
    """A dataclass field with ``help`` (one line, with units), optional ``choices`` and a range
    from ``min`` to ``max``, inclusive unless ``open_min``/``open_max`` (for a tuple field, each
    element's range; ``increasing``: the elements strictly increase)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "min": min, "max": max,
                                                        "open_min": open_min, "open_max": open_max,
                                                        "increasing": increasing})


def range_text(meta) -> str:
    """The allowed range of a field, as ``--help`` and errors state it (``""`` when unbounded)."""
    lo, hi = meta.get("min"), meta.get("max")
    low = None if lo is None else f"{'>' if meta.get('open_min') else '>='} {lo:g}"
    high = None if hi is None else f"{'<' if meta.get('open_max') else '<='} {hi:g}"
    return " and ".join(x for x in (low, high) if x)


def check_value(f: dataclasses.Field, value, *, name: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and ``name`` when ``value`` is outside the field's
    choices or range (NaN and infinity are outside every range); the message says what is allowed."""
    meta = f.metadata
    choices, lo, hi = meta.get("choices"), meta.get("min"), meta.get("max")
    if choices is not None and value not in choices:
        raise ValueError(f"{where}: {name} = {value!r}; choose one of {', '.join(map(str, choices))}")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        below = lo is not None and (v <= lo if meta.get("open_min") else v < lo)
        above = hi is not None and (v >= hi if meta.get("open_max") else v > hi)
        if below or above or v != v or v in (float("inf"), float("-inf")):
            rng, finite = range_text(meta), v == v and v not in (float("inf"), float("-inf"))
            rng = rng if finite else (f"{rng} and finite" if rng else "finite")
            raise ValueError(f"{where}: {name} = {value!r} is out of range; it must be {rng} ({meta['help']})")
    if meta.get("increasing") and any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{where}: {name} = {value!r}; the values must strictly increase ({meta['help']})")


METHODS = ("soft-intro", "vae", "intro")
CATEGORY_SAMPLING = ("proportional", "balanced")
ENCODERS = ("pointnet", "dgcnn")


@dataclass
class ModelConfig:
    """The ``[model]`` section: the keyword arguments of :class:`~pointcloud_sivae.models.vae.SoftIntroVAE`."""

    z_dim: int = option(128, "latent size Z (dimensions of z)", min=1)
    num_points: int = option(0, "points per cloud N the decoder outputs, at most the prepared count (fewer: "
                             "PointFlow's random subsets, fresh per training step, fixed for val/test); 0 means "
                             "the prepared count", min=0)
    encoder_channels: tuple[int, ...] = option((64, 128, 256, 256, 512),
                                               "widths of the PointNet per-point 1x1 Conv1d layers", min=1)
    encoder_fc: int = option(256, "width of the Linear layer after max-pooling", min=1)
    decoder_widths: tuple[int, ...] = option((64, 128, 512, 1024), "hidden widths of the fully connected decoder",
                                             min=1)
    prior_std: float = option(0.2, "sigma_p of the prior N(0, sigma_p^2 I), > 0", min=1e-6)
    encoder: str = option("pointnet", "pointnet, or dgcnn (EdgeConv on kNN graphs; needs the [graph] extra)",
                          choices=ENCODERS)
    knn_k: int = option(20, "DGCNN: neighbours per point", min=1)
    encoder_order: str = option("relu-bn", "PointNet layer order: relu-bn (official Soft-IntroVAE: Conv, ReLU, "
                                "BatchNorm) or bn-relu (PointNet: Conv, BatchNorm, ReLU)",
                                choices=ENCODER_ORDERS)
    encoder_pool: str = option("max", "PointNet pooling over points: max (PointNet, official Soft-IntroVAE) or "
                               "max-mean (max- and mean-pooled features concatenated: sees point density)",
                               choices=ENCODER_POOLS)


@dataclass
class LossConfig:
    method: str = option("soft-intro", "objective: soft-intro (Daniel & Tamar 2021), vae, or intro (IntroVAE, "
                         "Huang et al. 2018); see pointcloud_sivae/losses.py", choices=METHODS)
    beta_rec: float = option(20.0, "b_rec, weight of the reconstruction (Chamfer) term", min=0)
    beta_kl: float = option(1.0, "b_kl, weight of the KL of real data (and, in the decoder step, of generated data)",
                            min=0)
    beta_neg: float = option(256.0, "b_neg, weight of the KL of reconstructed/generated data in the exp terms",
                             min=0)
    gamma_r: float = option(1e-8, "gamma_r, weight of the decoder's rec-of-rec / rec-of-fake terms", min=0)
    beta_repulsion: float = option(0.0, "b_rep, soft-intro only: weight of the repulsion penalty of generated clouds "
                                   "in the decoder step (points closer than repulsion_radius times their cloud's RMS "
                                   "nearest-neighbour distance are pushed apart; 0 = off, the official objective)",
                                   min=0)
    repulsion_radius: float = option(0.5, "h of the repulsion penalty, in units of each generated cloud's RMS "
                                     "nearest-neighbour distance", min=0, open_min=True)
    scale_points: int = option(2048, "N_ref of s = 1/(3 N_ref), points; Chamfer sums are rescaled to N_ref points "
                               "so the weights mean the same at any --num-points (2048: the official balance)",
                               min=1)
    frame_diagonal: float = option(0.0, "D, the length unit of the Chamfer terms (model-frame units): Chamfer values "
                                   "are divided by D^2 so the weights mean the official objective (shapes of unit "
                                   "bounding-box diagonal) in any frame; 0 measures D as the mean bounding-box "
                                   "diagonal of the training shapes", min=0)
    intro_margin: float = option(110.0, "IntroVAE hinge margin m, nats (KL summed over latent dims)", min=0)
    intro_alpha: float = option(0.25, "IntroVAE weight of the adversarial KL terms", min=0)
    intro_beta: float = option(20.0, "IntroVAE weight of the reconstruction term (KL(x) has weight 1)", min=0)
    chamfer_backend: str = option("auto", "nearest-neighbour search of the training Chamfer distance: auto (numba "
                                  "on CPU; KeOps, pytorch3d, then torch on GPU)", choices=CHAMFER_CHOICES)


@dataclass
class OptimConfig:
    lr_e: float = option(5e-4, "encoder Adam learning rate", min=0, open_min=True)
    lr_d: float = option(5e-4, "decoder Adam learning rate", min=0, open_min=True)
    beta1: float = option(0.9, "Adam beta1", min=0, max=1, open_max=True)
    beta2: float = option(0.999, "Adam beta2", min=0, max=1, open_max=True)
    weight_decay: float = option(0.0, "decoupled weight decay of both networks (AdamW, Loshchilov & Hutter 2019); "
                                 "0: plain Adam, as the official code", min=0)
    milestones: tuple[int, ...] = option((350, 450, 550), "MultiStepLR milestones, epochs (comma-separated, "
                                         "increasing)", min=1, increasing=True)
    lr_gamma: float = option(0.5, "MultiStepLR factor at each milestone", min=0, open_min=True)
    batch_size: int = option(32, "shapes per (global) batch (BatchNorm needs 2; a last batch of 1 is dropped)", min=2)
    epochs: int = option(2000, "total epochs (a resumed run continues to this number)", min=1)
    warmup_epochs: int = option(0, "first epochs trained as a plain VAE (exactly this many)", min=0)


@dataclass
class DataConfig:
    category: str = option("airplane", "ShapeNet category name or synset id, or ModelNet40 class name; several "
                           "(e.g. --category airplane car) train one model on their union, each prepared under "
                           "--data-root as for one")
    category_sampling: str = option("proportional", "several categories: proportional (every training shape once per "
                                    "epoch, as the official code's concatenated classes) or balanced (each category an "
                                    "equal share of every epoch's shapes: a small one is drawn again, a large one in "
                                    "part)", choices=CATEGORY_SAMPLING)
    data_root: str = option("data/shapenet", "prepared data root (written by python -m shapenet_prep)")
    subset_seed: int = option(0, "seed of the fixed point subset of every val/test cloud when --num-points is below "
                              "the prepared count", min=0)
    train_subsets: str = option("fresh", "when --num-points is below the prepared count, training takes a fresh random "
                                "subset of every cloud at every step (fresh, PointFlow's), or each cloud's fixed subset "
                                "(fixed: as if prepared at --num-points)", choices=("fresh", "fixed"))


@dataclass
class TrainConfig:
    seed: int = option(0, "random seed (weights, batch order, noise)", min=0, max=2**63 - 1)
    device: str = option("auto", "auto (CUDA when present), cpu, cuda or cuda:N")
    out_dir: str = option("runs", "runs are written to <out_dir>/<run_name>")
    run_name: str = option("", "run folder name (default <category>-<timestamp>)")
    val_every: int = option(10, "validate every k epochs (and after the last one)", min=1)
    vis_every: int = option(10, "log clouds, image grid and interpolation every k epochs", min=1)
    log_every: int = option(1, "TensorBoard scalars every k steps", min=1)
    jsd_sample_factor: int = option(3, "validation JSD uses factor * |val| prior samples", min=1)
    val_generation_metrics: bool = option(True, "validation MMD/COV/1-NNA-CD of |val| samples (cost ~ |val|^2)")
    num_vis: int = option(4, "clouds per row in logged images", min=1)
    progress: bool = option(True, "tqdm progress bar")
    amp: str = option("off", "off, bf16: autocast the networks in bfloat16 (distances, KL, losses stay "
                      "float32; fp16 is not offered), or auto: bf16 where the device computes it in hardware (CUDA, "
                      "CPUs with AVX512-BF16 or AMX), float32 elsewhere", choices=("off", "bf16", "auto"))
    compile: bool = option(False, "torch.compile the encoder and decoder (the first steps pay the compile time)")
    sync_batchnorm: bool = option(False, "under torchrun: BatchNorm statistics of the global batch (true: the "
                                  "single-process update exactly, one all-reduce per layer per pass, 1.74x slower on "
                                  "2 CPU cores) or of each process's shard (false: DDP's default; B/P x N points "
                                  "per layer)")
    health_epochs: int = option(10, "warn once when the exp terms stay saturated or the KL gap < 0 for this many "
                                "epochs", min=1)


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "data": DataConfig,
    "train": TrainConfig,
}

# Flags that may differ on --resume; all others must match the checkpoint.
RESUMABLE_OVERRIDES = {"epochs", "device", "val_every", "vis_every", "log_every", "progress", "amp", "compile",
                       "health_epochs"}

# Config fields added after runs were saved without them, and the value that keeps such a
# run's meaning (a stored config is upgraded, never silently given the new default).
UPGRADES = {
    ("loss", "scale_points"): (
        lambda d: int(d.get("model", {}).get("num_points") or 2048),
        "saved before the point-count-invariant weights: s = 1/(3N) at its own N, kept as scale_points = N"),
    ("loss", "frame_diagonal"): (
        lambda d: 1.0,
        "saved before the frame-invariant weights: Chamfer values in the model frame's units, kept as "
        "frame_diagonal = 1"),
    ("train", "sync_batchnorm"): (
        lambda d: True,
        "saved before sync_batchnorm existed: under torchrun its BatchNorm statistics covered the global batch, "
        "kept as sync_batchnorm = true"),
    ("model", "encoder_order"): (
        lambda d: "bn-relu",
        "saved before encoder_order existed: its PointNet ran Conv -> BatchNorm -> ReLU, kept as bn-relu"),
    ("data", "category_sampling"): (
        lambda d: "proportional",
        "saved before several categories could be trained at once: every training shape once per epoch, kept as "
        "proportional"),
}


def upgrade_stored_config(d: dict, *, where: str) -> tuple[dict, list[str]]:
    """A stored config (checkpoint or ``config.json``) with the fields it predates filled in
    with the values that keep its meaning; returns ``(config dict, notes)``, one note per
    field filled, naming ``where`` it came from."""
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in d.items()}
    notes = []
    for (section, key), (value_of, why) in UPGRADES.items():
        if isinstance(d.get(section), dict) and key not in d[section]:
            d[section][key] = value_of(d)
            notes.append(f"{where}: {section}.{key} = {d[section][key]!r} ({why})")
    return d, notes


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, *, where: str = "config") -> "RunConfig":
        """Build from nested ``{section: {key: value}}``; missing keys keep defaults.

        Raises:
            ValueError: unknown section or key, or a value of the wrong type.
        """
        cfg = cls()
        apply_sections(cfg, d, where=where)
        return cfg


def apply_sections(cfg: RunConfig, d: dict, *, where: str) -> None:
    """Set every ``{section: {key: value}}`` of ``d`` on ``cfg`` with :func:`set_field`.

    Raises:
        ValueError: unknown section or key, a section that is not a table, or a bad value.
    """
    for section, values in d.items():
        if section not in SECTIONS:
            raise ValueError(f"{where}: unknown section [{section}]; expected one of {sorted(SECTIONS)}")
        if not isinstance(values, dict):
            raise ValueError(f"{where}: section [{section}] must be a table of key = value")
        for key, value in values.items():
            set_field(cfg, section, key, value, where=where)


def _field_types(section_cls) -> dict[str, type]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def _coerce(value, typ, name: str, where: str):
    origin = typing.get_origin(typ)
    try:
        if origin is tuple:
            (inner, _ellipsis) = typing.get_args(typ)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split()]
            return tuple(inner(v) for v in value)
        if typ is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if typ in (int, float) and isinstance(value, bool):
            raise ValueError(value)
        return typ(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name} = {value!r} is not a valid {getattr(typ, '__name__', typ)}") from None


def set_field(cfg: RunConfig, section: str, key: str, value, *, where: str = "config") -> None:
    """Set ``cfg.<section>.<key>`` with type coercion (and the canonical name for a category).

    Raises:
        ValueError: unknown key, a value of the wrong type, or an unknown category.
    """
    types = _field_types(SECTIONS[section])
    if key not in types:
        raise ValueError(f"{where}: unknown key {key!r} in [{section}]; valid keys: {sorted(types)}")
    if (section, key) == ("data", "category"):  # one name (a str, as ever), or several (a list)
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: data.category = {value!r}; give a category name, or a list of them")
        try:
            names = category_names(value)  # "plane" and "02691156" both mean "airplane"
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        setattr(cfg.data, key, names[0] if len(names) == 1 else names)
        return
    value = _coerce(value, types[key], f"{section}.{key}", where)
    if (section, key) == ("train", "amp") and value not in ("off", "bf16", "auto"):
        raise ValueError(f"{where}: amp = {value!r}; use off, bf16 or auto (fp16 is not offered: the encoder's "
                         "exp(-2s ELBO) terms span more orders of magnitude than float16 holds)")
    if (section, key) == ("loss", "method") and value not in METHODS:
        raise ValueError(f"{where}: unknown method {value!r}; choose one of {', '.join(METHODS)}")
    check_value(FIELDS[section][key], value, name=f"{section}.{key}", where=where)
    setattr(getattr(cfg, section), key, value)


FIELDS = {section: {f.name: f for f in dataclasses.fields(cls)} for section, cls in SECTIONS.items()}


def _flag_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            assert f.name not in index, f"config field {f.name} appears in two sections"
            index[f.name] = section
    return index


FLAG_SECTION = _flag_index()


def load_config_file(path: str | Path) -> dict:
    """Read a JSON or TOML config file into ``{section: {key: value}}``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unsupported extension, unparsable or non-text content, or a top level that is not a
            table of sections (each naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    if path.suffix not in (".json", ".toml"):
        raise ValueError(f"config file {path}: expected a .json or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
        d = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text (a binary file?); give a .json or .toml "
                         "config") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"config file {path} cannot be parsed: {exc}") from None
    if not isinstance(d, dict):
        raise ValueError(f"config file {path}: the top level must be a table of sections, e.g. "
                         f'{{"loss": {{"beta_rec": 125}}}}, got a {type(d).__name__}')
    return d


def flag_help(f: dataclasses.Field, default) -> str:
    """One line of ``--help`` for a config field: its description, range and default."""
    meta = f.metadata
    rng = range_text(meta)
    rng = f"; {rng}" if rng else ""
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default).lower() if isinstance(
        default, bool) else repr(default) if isinstance(default, str) else default
    return f"{meta['help']}{rng} (default: {shown})"


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per config field (default ``None`` = not given), with the help text,
    choices and range declared on the field."""
    for section, cls in SECTIONS.items():
        group = parser.add_argument_group(f"[{section}]")
        defaults = cls()
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            choices = f.metadata.get("choices")
            typ = _field_types(cls)[f.name]
            metavar = ("{" + ",".join(choices) + "}" if choices else "{true,false}" if typ is bool
                       else f.name.upper())
            several = {"nargs": "+"} if f.name == "category" else {}  # --category airplane car
            group.add_argument(flag, dest=f.name, default=None, metavar=metavar, **several,
                               help=flag_help(f, getattr(defaults, f.name)))


def explicit_flags(args: argparse.Namespace) -> dict[str, object]:
    """The config fields given on the command line: ``{field: raw value}``."""
    return {k: getattr(args, k) for k in FLAG_SECTION if getattr(args, k, None) is not None}


PRESET_DIR = Path(__file__).parent / "presets"


def list_presets() -> dict[str, str]:
    """``{name: description}`` of the presets shipped in ``pointcloud_sivae/runs/presets/*.toml``;
    the description is the file's leading ``#`` comment block."""
    out = {}
    for path in sorted(PRESET_DIR.glob("*.toml")):
        lines = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            lines.append(line.lstrip("#").strip())
        out[path.stem] = " ".join(x for x in lines if x)
    return out


def preset_path(name: str) -> Path:
    """The TOML file of preset ``name``.

    Raises:
        ValueError: no such preset; the message lists the presets there are.
    """
    path = PRESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(list_presets()) or 'none'} "
                         "(python -m pointcloud_sivae.train --list-presets describes them)")
    return path


def resolve_config(config_file: str | None, flags: dict[str, object], preset: str | None = None) -> RunConfig:
    """Dataclass defaults, then the preset, then the config file, then command-line flags
    (each later source overrides the fields it sets)."""
    cfg = RunConfig()
    sources = ([(preset_path(preset), f"preset {preset}")] if preset else []) + (
        [(Path(config_file), str(config_file))] if config_file else [])
    for path, where in sources:
        apply_sections(cfg, load_config_file(path), where=where)
    for key, value in flags.items():
        set_field(cfg, FLAG_SECTION[key], key, value, where="command line")
    return cfg


# ----- the config of a run on its data -----


def config_for_data(cfg: RunConfig, data_num_points: int, data_diagonal: float) -> RunConfig:
    """The run's config for its prepared data: a new object (``cfg`` is unchanged) with the
    fields that are measured on the data set: ``model.num_points`` (0: every prepared point;
    fewer train on PointFlow's random subsets, fresh per cloud per step, and validate on fixed
    ones) and ``loss.frame_diagonal`` (0: ``data_diagonal``, the mean bounding-box diagonal of
    the training shapes).

    Raises:
        ValueError: ``cfg`` asks for more points than the data has.
    """
    check_point_count(cfg.model.num_points, data_num_points,
                      f"{cfg.data.data_root}/{'+'.join(category_names(cfg.data.category))}")
    cfg = copy.deepcopy(cfg)
    cfg.model.num_points = cfg.model.num_points or data_num_points
    cfg.loss.frame_diagonal = cfg.loss.frame_diagonal or data_diagonal
    return cfg


def data_fingerprint(manifest: dict) -> dict:
    """What a run's prepared data must keep for a checkpoint to resume on it."""
    return {k: manifest.get(k) for k in ("category", "num_points", "normalization", "splits", "split_seed")}


def points_used(cfg: RunConfig, prepared: int) -> dict:
    """How many points each cloud has, and which of them each use takes (for ``run_info.json``)."""
    M = cfg.model.num_points
    if M == prepared:
        return {"prepared": prepared, "model": M, "train": "all", "validation": "all"}
    train = (f"a fresh uniform subset of {M} per cloud per step (generator seeded by seed and step)"
             if cfg.data.train_subsets == "fresh" else "the fixed subset of each cloud (as validation)")
    return {"prepared": prepared, "model": M, "train": train,
            "validation": f"a fixed subset of {M} per cloud, seed data.subset_seed = {cfg.data.subset_seed}: "
                          + SUBSET_RULE}


def build_objectives(cfg: RunConfig, chamfer) -> dict:
    """Every method's objective with the run's weights and scales (``cfg`` resolved on its data), by
    method name: the run uses ``vae`` in its warm-up epochs and ``loss.method`` after."""
    L, m = cfg.loss, cfg.model
    if L.beta_repulsion > 0 and L.method != "soft-intro":
        raise ValueError(f"beta_repulsion = {L.beta_repulsion} acts in the Soft-IntroVAE decoder step only; "
                         f"method {L.method!r} has none: set --beta-repulsion 0 or --method soft-intro")
    scales = {"num_points": m.num_points, "scale_points": L.scale_points, "frame_diagonal": L.frame_diagonal,
              "prior_std": m.prior_std, "chamfer": chamfer}
    return {"vae": VAEObjective(beta_rec=L.beta_rec, beta_kl=L.beta_kl, **scales),
            "soft-intro": SoftIntroObjective(beta_rec=L.beta_rec, beta_kl=L.beta_kl, beta_neg=L.beta_neg,
                                             gamma_r=L.gamma_r, beta_repulsion=L.beta_repulsion,
                                             repulsion_radius=L.repulsion_radius, **scales),
            "intro": IntroObjective(margin=L.intro_margin, alpha=L.intro_alpha, beta=L.intro_beta, **scales)}
