"""ShapeNetCore category names and synset ids (all 55 ShapeNetCore.v2 categories).

Canonical names follow PointFlow's ``synsetid_to_cate`` where that table is right;
two of its names are fixed: ``02747177`` is a trash bin (PointFlow says "can") and
``02946921`` is a can (PointFlow says "tin_can"). Both old spellings stay usable as
aliases except ``can``, which now means the synset that actually holds cans.
"""

from __future__ import annotations

SYNSET_TO_CATEGORY: dict[str, str] = {
    "02691156": "airplane",
    "02747177": "trash_bin",
    "02773838": "bag",
    "02801938": "basket",
    "02808440": "bathtub",
    "02818832": "bed",
    "02828884": "bench",
    "02843684": "birdhouse",
    "02871439": "bookshelf",
    "02876657": "bottle",
    "02880940": "bowl",
    "02924116": "bus",
    "02933112": "cabinet",
    "02942699": "camera",
    "02946921": "can",
    "02954340": "cap",
    "02958343": "car",
    "02992529": "cellphone",
    "03001627": "chair",
    "03046257": "clock",
    "03085013": "keyboard",
    "03207941": "dishwasher",
    "03211117": "monitor",
    "03261776": "earphone",
    "03325088": "faucet",
    "03337140": "file_cabinet",
    "03467517": "guitar",
    "03513137": "helmet",
    "03593526": "jar",
    "03624134": "knife",
    "03636649": "lamp",
    "03642806": "laptop",
    "03691459": "speaker",
    "03710193": "mailbox",
    "03759954": "microphone",
    "03761084": "microwave",
    "03790512": "motorcycle",
    "03797390": "mug",
    "03928116": "piano",
    "03938244": "pillow",
    "03948459": "pistol",
    "03991062": "flowerpot",
    "04004475": "printer",
    "04074963": "remote_control",
    "04090263": "rifle",
    "04099429": "rocket",
    "04225987": "skateboard",
    "04256520": "sofa",
    "04330267": "stove",
    "04379243": "table",
    "04401088": "telephone",
    "04460130": "tower",
    "04468005": "train",
    "04530566": "vessel",
    "04554684": "washer",
}

CATEGORY_TO_SYNSET: dict[str, str] = {name: synset for synset, name in SYNSET_TO_CATEGORY.items()}

ALIASES: dict[str, str] = {
    "plane": "airplane",
    "aeroplane": "airplane",
    "ashcan": "trash_bin",
    "tin_can": "can",
    "mobile_phone": "cellphone",
    "display": "monitor",
    "file": "file_cabinet",
    "loudspeaker": "speaker",
    "motorbike": "motorcycle",
    "pot": "flowerpot",
    "remote": "remote_control",
    "watercraft": "vessel",
    "boat": "vessel",
}


def canonical_category(name_or_synset: str) -> str:
    """Return the canonical category name for a name, an alias or a synset id.

    Args:
        name_or_synset: e.g. ``"airplane"``, ``"plane"`` or ``"02691156"``;
            case-insensitive, ``-`` and spaces read as ``_``.

    Returns:
        The canonical name, e.g. ``"airplane"``.

    Raises:
        ValueError: the name is not a ShapeNetCore category; the message lists
            every valid name.
    """
    key = name_or_synset.strip().lower().replace("-", "_").replace(" ", "_")
    if key in SYNSET_TO_CATEGORY:
        return SYNSET_TO_CATEGORY[key]
    if key in CATEGORY_TO_SYNSET:
        return key
    if key in ALIASES:
        return ALIASES[key]
    valid = ", ".join(sorted(CATEGORY_TO_SYNSET))
    raise ValueError(
        f"unknown ShapeNet category {name_or_synset!r}; valid categories are: {valid} "
        "(a synset id such as 02691156 works too)"
    )


def synset_of(name_or_synset: str) -> str:
    """Return the 8-digit synset id of a category name, alias or synset id.

    Raises:
        ValueError: unknown category (see :func:`canonical_category`).
    """
    return CATEGORY_TO_SYNSET[canonical_category(name_or_synset)]


# The 40 classes of ModelNet40 (Wu et al., CVPR 2015), in the order of the PointNet++
# release's ``modelnet40_shape_names.txt`` (the HDF5 release's labels index this list).
MODELNET40_CLASSES: tuple[str, ...] = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp",
    "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink",
    "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)


def dataset_category(name: str) -> str:
    """The folder name of a prepared category: a ShapeNet category or a ModelNet40 class.

    A ShapeNet name, alias or synset id gives its canonical ShapeNet name (``"plane"`` ->
    ``"airplane"``); otherwise a ModelNet40 class name is taken as it is (``"night_stand"``).

    Raises:
        ValueError: neither; the message lists the valid names of both collections.
    """
    try:
        return canonical_category(name)
    except ValueError:
        key = name.strip().lower().replace("-", "_").replace(" ", "_")
        if key in MODELNET40_CLASSES:
            return key
        raise ValueError(
            f"unknown category {name!r}: not a ShapeNetCore category ({', '.join(sorted(CATEGORY_TO_SYNSET))}) "
            f"nor a ModelNet40 class ({', '.join(MODELNET40_CLASSES)})"
        ) from None
