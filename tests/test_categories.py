import pytest

from pointcloud_sivae.data.categories import CATEGORY_TO_SYNSET, SYNSET_TO_CATEGORY, canonical_category, synset_of


def test_all_55_shapenetcore_categories_with_unique_synsets():
    assert len(SYNSET_TO_CATEGORY) == 55
    assert len(set(SYNSET_TO_CATEGORY.values())) == 55
    assert all(len(s) == 8 and s.isdigit() for s in SYNSET_TO_CATEGORY)


@pytest.mark.parametrize("name,synset", [("airplane", "02691156"), ("bench", "02828884"), ("chair", "03001627"),
                                         ("car", "02958343"), ("table", "04379243"), ("can", "02946921"),
                                         ("trash_bin", "02747177")])
def test_known_synsets(name, synset):
    assert synset_of(name) == synset
    assert canonical_category(synset) == name


def test_aliases_and_spelling_variants():
    assert canonical_category("Plane") == "airplane"
    assert canonical_category("remote-control") == "remote_control"
    assert canonical_category("watercraft") == "vessel"
    assert all(canonical_category(n) == n for n in CATEGORY_TO_SYNSET)


def test_unknown_category_lists_valid_ones():
    with pytest.raises(ValueError, match=r"unknown ShapeNet category 'airplan'.*airplane, bag, basket"):
        canonical_category("airplan")
