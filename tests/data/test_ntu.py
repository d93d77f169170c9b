import pytest

from occbench.data import ntu
from occbench.errors import OccbenchError


def test_parse_name():
    name = ntu.parse_name("/x/S017C003P020R002A060.skeleton")
    assert (name.setup, name.camera, name.subject, name.replication, name.action) == (17, 3, 20, 2, 60)
    assert name.label == 59 and str(name) == "S017C003P020R002A060"
    with pytest.raises(OccbenchError, match="not an NTU sample name"):
        ntu.parse_name("hello.skeleton")


def test_missing_skeleton_lists_match_the_official_counts():
    sixty, full = ntu.missing_skeletons("ntu60"), ntu.missing_skeletons("ntu120")
    assert len(sixty) == 302 and len(full) == 535 and sixty < full
    assert "S001C002P005R002A008" in sixty and "S032C003P067R002A077" in full - sixty


def test_split_rules():
    s = ntu.parse_name
    assert ntu.is_train(s("S001C001P001R001A001"), "ntu60", "xsub")
    assert not ntu.is_train(s("S001C001P003R001A001"), "ntu60", "xsub")
    assert ntu.is_train(s("S020C001P045R001A070"), "ntu120", "xsub")
    assert not ntu.is_train(s("S020C001P045R001A070"), "ntu60", "xsub")
    assert ntu.is_train(s("S001C002P003R001A001"), "ntu60", "xview")
    assert not ntu.is_train(s("S001C001P001R001A001"), "ntu60", "xview")
    assert ntu.is_train(s("S002C001P003R001A001"), "ntu120", "xset")
    assert not ntu.is_train(s("S031C001P003R001A001"), "ntu120", "xset")
    assert len(ntu.NTU120_TRAIN_SUBJECTS) == 53
    with pytest.raises(OccbenchError, match="unknown split"):
        ntu.is_train(s("S001C001P001R001A001"), "ntu60", "xcam")


def test_skeleton_facts():
    assert len(ntu.EDGES) == 24 and ntu.PARENT[ntu.CENTER_JOINT] == ntu.CENTER_JOINT
    assert sorted(ntu.LEFT_RIGHT_SWAP) == list(range(25))
    assert len(ntu.class_names("ntu60")) == 60 and len(ntu.class_names("ntu120")) == 120
    assert ntu.class_names("ntu120")[0] == "drink water"
    assert ntu.class_names("ntu120")[119].startswith("finger-guessing game")


@pytest.mark.parametrize("name", ["S001C001P001R001A000", "S001C001P001R001A0011", "xxS001C001P001R001A001yy",
                                  "S001C001P001R001A001 (1).skeleton", "S000C001P001R001A001", "s001c001p001r001a001",
                                  "S001C001P001R001A001.skeleton.bak"])
def test_a_near_miss_of_an_ntu_name_is_not_a_sample(name):
    """Each of these once passed with a label made up from part of the name."""
    with pytest.raises(OccbenchError, match="not an NTU sample name"):
        ntu.parse_name(name)


def test_names_with_a_folder_or_suffix_still_parse():
    assert str(ntu.parse_name("C:\\data\\S001C002P003R002A013.skeleton")) == "S001C002P003R002A013"
    assert ntu.parse_name("nturgb+d_skeletons/S001C002P003R002A013").action == 13
