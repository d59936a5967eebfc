"""Dataset specs and adapters: folder, CrossTask, ProceL, action-segmentation, synthetic.

Every fixture follows the published file formats; videos are empty placeholder files
since opening a dataset never decodes them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io

from procl import ProclError
from procl.data import BACKGROUND, Segment, load_feature_array, open_dataset, parse_spec, specs
from procl.data.folder import seeded_split
from procl.data.records import VideoRecord
from procl.paths import SAMPLES

BREAKFAST = SAMPLES / "breakfast_coffee"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- folder


def make_folder(root: Path) -> Path:
    for vid in ("a1", "a2", "a3"):
        write(root / "videos" / "cook" / f"{vid}.mp4")
    write(root / "videos" / "clean" / "b1.mkv")
    write(root / "videos" / "clean" / "b2.webm")
    write(root / "videos" / "clean" / "notes.txt", "not a video")
    write(root / "annotations" / "cook" / "a1.csv", "1,0.0,2.0\n2,2.5,4.0\n")
    write(root / "annotations" / "cook" / "a2.csv", "2, 1, 3\n\n")
    write(root / "annotations" / "clean" / "b1.csv", "3,1,2\n")
    write(root / "steps" / "cook.txt", "crack egg\nstir\n")
    return root


def test_folder_layout(tmp_path):
    root = make_folder(tmp_path / "mine")
    ds = open_dataset(f"folder:{root}")
    assert ds.spec == f"folder:{root}"
    assert ds.tasks == ["clean", "cook"]
    assert sorted(v.id for v in ds.videos) == ["a1", "a2", "a3", "b1", "b2"]
    assert all(v.kind == "video" for v in ds.videos)
    assert ds.steps == {"cook": ["crack egg", "stir"], "clean": ["step 1", "step 2", "step 3"]}
    a1 = ds.video("a1")
    assert a1.task == "cook" and a1.source == root / "videos" / "cook" / "a1.mp4"
    assert a1.segments == [Segment(0, 0.0, 2.0), Segment(1, 2.5, 4.0)]
    labels = a1.labels_at(np.array([0.0, 1.0, 2.0, 2.5, 3.9, 4.0]))
    assert labels.tolist() == [0, 0, -1, 1, 1, -1]
    assert ds.video("b1").labels_at(np.array([0.5, 1.5])).tolist() == [-1, 2]
    assert ds.video("a3").segments is None and ds.video("a3").labels_at(np.array([0.0])) is None
    assert set(ds.split) == {v.id for v in ds.videos}
    for task in ds.tasks:
        assert {ds.split[v.id] for v in ds.videos_of(task)} == {"train", "test"}
    assert ds.annotated


def test_folder_split_csv(tmp_path):
    root = make_folder(tmp_path / "mine")
    write(root / "split.csv", "video,split\na1,train\na2,test\na3,train\nb1,test\nb2,train\n")
    ds = open_dataset(f"folder:{root}")
    assert ds.split == {"a1": "train", "a2": "test", "a3": "train", "b1": "test", "b2": "train"}
    assert [v.id for v in ds.videos_of("cook", "test")] == ["a2"]


def test_folder_features(tmp_path):
    root = tmp_path / "feats"
    root.joinpath("videos", "t").mkdir(parents=True)
    np.save(root / "videos" / "t" / "v1.npy", np.zeros((6, 8), np.float32))  # [T, D]
    np.save(root / "videos" / "t" / "v2.npy", np.zeros((5, 4, 8), np.float32))  # [T, R, D]
    ds = open_dataset(f"folder:{root}")
    assert {v.kind for v in ds.videos} == {"features"}
    assert {v.feature_fps for v in ds.videos} == {2.0}
    assert load_feature_array(ds.video("v2")).shape == (5, 4, 8)
    write(root / "features.json", '{"fps": 4}')
    assert open_dataset(f"folder:{root}").video("v1").feature_fps == 4.0
    write(root / "videos" / "t" / "v3.mp4")
    with pytest.raises(ProclError, match="mixes video files"):
        open_dataset(f"folder:{root}")


def test_folder_bad_feature_file(tmp_path):
    root = tmp_path / "feats"
    root.joinpath("videos", "t").mkdir(parents=True)
    np.save(root / "videos" / "t" / "v1.npy", np.zeros(6, np.float32))  # [T]: no feature axis
    with pytest.raises(ProclError, match=r"v1.npy has shape \[6\]; expected \[T, D\] or \[T, R, D\]"):
        open_dataset(f"folder:{root}")
    write(root / "videos" / "t" / "v1.npy", "not numpy")
    with pytest.raises(ProclError, match="cannot read the feature file .*v1.npy"):
        open_dataset(f"folder:{root}")


def test_folder_duplicate_ids(tmp_path):
    root = make_folder(tmp_path / "mine")
    write(root / "videos" / "clean" / "a1.mov")
    with pytest.raises(ProclError) as err:
        open_dataset(f"folder:{root}")
    assert "cook/a1.mp4" in str(err.value) and "clean/a1.mov" in str(err.value)


@pytest.mark.parametrize(
    "row, expected",
    [
        ("1,zero,2\n", "a1.csv line 2.*not a row"),
        ("1,1\n", "a1.csv line 2.*not a row"),
        ("2,5.0,4.0\n", "a1.csv line 2.*end >= start"),
        ("3,0,1\n", "a1.csv line 2.*step 3 is outside 1..2.*cook.txt"),
        ("0,0,1\n", "a1.csv line 2.*step 0 is outside 1..2"),
    ],
)
def test_folder_bad_annotation(tmp_path, row, expected):
    root = make_folder(tmp_path / "mine")
    write(root / "annotations" / "cook" / "a1.csv", "1,0,1\n" + row)
    with pytest.raises(ProclError, match=expected):
        open_dataset(f"folder:{root}")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a1,train\nzz,test\n", "split.csv line 2.*no video 'zz'"),
        ("a1,train\na2,validation\n", "split.csv line 2.*'validation'.*'train' or 'test'"),
        ("a1,train\n", "does not give the split of 4 video"),
        ("a1,train\na1,test\n", "line 2.*both train and test"),
    ],
)
def test_folder_bad_split(tmp_path, text, expected):
    root = make_folder(tmp_path / "mine")
    write(root / "split.csv", text)
    with pytest.raises(ProclError, match=expected):
        open_dataset(f"folder:{root}")


def test_folder_without_videos(tmp_path):
    write(tmp_path / "empty" / "videos" / "cook" / "readme.txt", "no videos here")
    with pytest.raises(ProclError, match="no videos found under .*videos/<task>/<video>.mp4"):
        open_dataset(f"folder:{tmp_path / 'empty'}")


@pytest.mark.parametrize("kind", ["folder", "crosstask", "procel", "actseg"])
def test_missing_root(tmp_path, kind):
    with pytest.raises(ProclError, match="does not exist"):
        open_dataset(f"{kind}:{tmp_path / 'nowhere'}")


def test_root_is_a_file(tmp_path):
    with pytest.raises(ProclError, match="is a file, not a folder"):
        open_dataset(f"folder:{write(tmp_path / 'x.mp4')}")


@pytest.mark.parametrize("spec", ["imagenet", "kinetics:/data", "", "folder:", "/tmp"])
def test_unknown_spec(spec):
    with pytest.raises(ProclError) as err:
        open_dataset(spec)
    message = str(err.value)
    if spec != "folder:":
        assert "synthetic, folder:PATH, crosstask:PATH, procel:PATH or actseg:PATH" in message
    if spec == "/tmp":
        assert "folder:/tmp" in message


def test_parse_spec_normalises():
    assert parse_spec(" Synthetic ") == ("synthetic", None)
    assert parse_spec("Folder:./some/dir/") == ("folder", Path("some/dir"))
    assert parse_spec("actseg:/a//b/") == ("actseg", Path("/a/b"))


def test_spec_is_normalised(tmp_path, monkeypatch):
    make_folder(tmp_path / "mine")
    monkeypatch.chdir(tmp_path)
    ds = open_dataset("FOLDER:./mine/")
    assert ds.spec == "folder:mine" and ds.root == Path("mine")


def test_seeded_split_rules():
    videos = [VideoRecord(id=f"v{i:02d}", task="big", source=Path("x")) for i in range(10)]
    videos += [VideoRecord(id=f"p{i}", task="pair", source=Path("x")) for i in range(2)]
    videos += [VideoRecord(id="solo", task="one", source=Path("x"))]
    split = seeded_split(videos)
    assert split == seeded_split(list(reversed(videos)))  # order of discovery does not matter
    assert sum(split[f"v{i:02d}"] == "test" for i in range(10)) == 3
    assert sorted(split[f"p{i}"] for i in range(2)) == ["test", "train"]
    assert split["solo"] == "train"
    # a task's split does not depend on the other tasks
    assert seeded_split(videos[:10]) == {k: v for k, v in split.items() if k.startswith("v")}


def test_folder_opens_a_large_layout(tmp_path):
    root = tmp_path / "many"
    for t in range(8):
        videos, annotations = root / "videos" / f"task{t}", root / "annotations" / f"task{t}"
        videos.mkdir(parents=True)
        annotations.mkdir(parents=True)
        for i in range(250):
            (videos / f"t{t}_v{i:03d}.mp4").touch()
            (annotations / f"t{t}_v{i:03d}.csv").write_text("1,0,1.5\n2,2,3\n3,4,9.5\n")
    assert len(open_dataset(f"folder:{root}").videos) == 2000


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_spec(tmp_path, monkeypatch):
    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    calls = []

    def ensure_synthetic(progress=True, on_progress=None):
        calls.append(progress)
        return make_folder(tmp_path / "data" / "synthetic")

    monkeypatch.setattr(specs, "ensure_synthetic", ensure_synthetic)  # the generator is tested in test_synth.py
    ds = open_dataset("synthetic", progress=False)
    assert calls == [False]
    assert ds.spec == "synthetic"
    assert ds.root == tmp_path / "data" / "synthetic"
    assert ds.boxes_dir == tmp_path / "data" / "synthetic" / "boxes"
    assert len(ds.videos) == 5


# ----------------------------------------------------------------------------- CrossTask

TASKS_PRIMARY = """\
16815
Jack Up a Car
https://www.wikihow.com/Jack-Up-a-Car
3
brake on,raise jack,lower jack

23521
Make Jello Shots
https://www.wikihow.com/Make-Jello-Shots
4
pour water,pour jello powder,stir mixture,pour mixture into cup

"""


def make_crosstask(root: Path, features: bool = True) -> Path:
    write(root / "tasks_primary.txt", TASKS_PRIMARY)
    url = "https://www.youtube.com/watch?v="
    rows = [("16815", "jackA"), ("16815", "jack-B_2"), ("16815", "jackC"), ("23521", "jello1"),
            ("23521", "jello2"), ("23521", "gone"), ("91537", "related1")]
    write(root / "videos.csv", "".join(f"{t},{v},{url}{v}\n" for t, v in rows))
    write(root / "videos_val.csv", f"16815,jackC,{url}jackC\n23521,jello2,{url}jello2\n")
    write(root / "annotations" / "16815_jackA.csv", "1,0.00,2.50\n2,3.00,5.00\n3,6.00,8.00\n")
    write(root / "annotations" / "23521_jello1.csv", "4,1.5,3.2\n")
    write(root / "annotations" / "16815_jackC.csv", "2,0,1\n")
    for vid in ("jackA", "jack-B_2", "jackC", "jello1", "jello2", "related1"):
        if features:
            (root / "features").mkdir(exist_ok=True)
            np.save(root / "features" / f"{vid}.npy", np.random.default_rng(0).random((10, 3200), np.float32))
        else:
            task = "23521" if vid.startswith("jello") else "16815"
            write(root / "videos" / (task if vid != "jackA" else "") / f"{vid}.mp4")
    return root


def test_crosstask_features(tmp_path):
    root = make_crosstask(tmp_path / "crosstask_release")
    with pytest.warns(UserWarning, match="1 of 6 listed videos"):
        ds = open_dataset(f"crosstask:{root}")
    assert ds.tasks == ["Jack Up a Car", "Make Jello Shots"]
    assert ds.steps["Make Jello Shots"] == ["pour water", "pour jello powder", "stir mixture", "pour mixture into cup"]
    assert sorted(v.id for v in ds.videos) == ["jack-B_2", "jackA", "jackC", "jello1", "jello2"]
    assert all(v.kind == "features" and v.feature_fps == 1.0 for v in ds.videos)
    assert ds.split == {"jackA": "train", "jack-B_2": "train", "jackC": "test", "jello1": "train", "jello2": "test"}
    jack = ds.video("jackA")
    assert jack.task == "Jack Up a Car" and jack.source == root / "features" / "jackA.npy"
    t = np.arange(10) / jack.feature_fps
    assert jack.labels_at(t).tolist() == [0, 0, 0, 1, 1, -1, 2, 2, -1, -1]
    assert ds.video("jello1").labels_at(t).tolist() == [-1, -1, 3, 3, -1, -1, -1, -1, -1, -1]
    assert ds.video("jack-B_2").segments is None
    assert load_feature_array(jack).shape == (10, 3200)


def test_crosstask_videos(tmp_path):
    root = make_crosstask(tmp_path / "ct", features=False)
    with pytest.warns(UserWarning):
        ds = open_dataset(f"crosstask:{root}")
    assert all(v.kind == "video" for v in ds.videos)
    assert ds.video("jackA").source == root / "videos" / "jackA.mp4"
    assert ds.video("jello1").source == root / "videos" / "23521" / "jello1.mp4"


def test_crosstask_without_val_csv(tmp_path):
    root = make_crosstask(tmp_path / "ct")
    (root / "videos_val.csv").unlink()
    with pytest.warns(UserWarning):
        ds = open_dataset(f"crosstask:{root}")
    assert sorted(ds.split[v.id] for v in ds.videos_of("Jack Up a Car")) == ["test", "train", "train"]


def test_crosstask_bad_step(tmp_path):
    root = make_crosstask(tmp_path / "ct")
    write(root / "annotations" / "23521_jello1.csv", "4,1.5,3.2\n5,4,6\n")
    with pytest.raises(ProclError, match="23521_jello1.csv line 2.*step 5 is outside 1..4"):
        open_dataset(f"crosstask:{root}")


def test_crosstask_bad_video_rows(tmp_path):
    root = make_crosstask(tmp_path / "ct")
    with open(root / "videos_val.csv", "a") as fh:
        fh.write("23521,jackA,https://www.youtube.com/watch?v=jackA\n")
    expected = "videos_val.csv line 3: video jackA of task 23521 is already listed for task 16815"
    with pytest.raises(ProclError, match=expected):
        open_dataset(f"crosstask:{root}")
    write(root / "videos_val.csv", "16815\n")
    with pytest.raises(ProclError, match="videos_val.csv line 1: '16815' is not a row 'task_id,video_id,url'"):
        open_dataset(f"crosstask:{root}")


def test_crosstask_bad_task_block(tmp_path):
    root = make_crosstask(tmp_path / "ct")
    write(root / "tasks_primary.txt", TASKS_PRIMARY.replace("\n3\n", "\n4\n"))
    with pytest.raises(ProclError, match="tasks_primary.txt line 5.*declares 4 steps but lists 3"):
        open_dataset(f"crosstask:{root}")


# ----------------------------------------------------------------------------- ProceL


def cell(items: list) -> np.ndarray:
    """A MATLAB [n, 1] cell array as scipy.io.savemat writes one."""
    out = np.empty((len(items), 1), dtype=object)
    for i, item in enumerate(items):
        out[i, 0] = item
    return out


def save_procel_task(folder: Path, grammar: list[str], videos: list[dict]) -> None:
    """data.mat in the release's field layout, and readme.txt.

    Each video is a dict: name, steps (per key-step a list of (start, end) seconds), superframes.
    """
    folder.mkdir(parents=True, exist_ok=True)
    key_steps = cell([
        cell([np.array(occ, dtype=np.float64).reshape(-1, 2) if occ else np.zeros((0, 0)) for occ in v["steps"]])
        for v in videos
    ])
    scipy.io.savemat(folder / "data.mat", {
        "grammar": cell([np.array([g]) for g in grammar]),
        "key_steps_time": key_steps,
        "superframe_time": cell([np.array(v["superframes"], dtype=np.float64) for v in videos]),
    })
    write(folder / "readme.txt", "".join(f"https://youtu.be/x{i}\t{v['name']}\n" for i, v in enumerate(videos)))


def make_procel(root: Path) -> Path:
    sf = [[0.0, 1.0], [1.0, 2.5], [2.5, 4.0], [4.0, 6.0]]
    save_procel_task(root / "perform_cpr", ["check breathing", "give compression", "give breath"], [
        {"name": "cpr_0001", "steps": [[(0.0, 1.0)], [(1.0, 2.5), (4.0, 6.0)], []], "superframes": sf},
        {"name": "cpr_0002", "steps": [[], [(2.5, 4.0)], [(0.5, 1.5)]], "superframes": sf[:3]},
        {"name": "cpr_0003", "steps": [[(0, 2)], [], []], "superframes": sf},
    ])
    save_procel_task(root / "tie_tie", ["make loop", "pull through"], [
        {"name": "tie_0001", "steps": [[(0.0, 2.5)], [(2.5, 6.0)]], "superframes": sf},
        {"name": "tie_0002", "steps": [[], [(1.0, 2.0)]], "superframes": sf},
        {"name": "tie_0003", "steps": [[(0, 1)], []], "superframes": sf},
    ])
    for name in ("cpr_0001", "cpr_0002"):
        write(root / "perform_cpr" / f"{name}.mp4")
    for name in ("tie_0001", "tie_0002", "tie_0003"):
        write(root / "tie_tie" / "videos" / f"{name}.mp4")
    return root


def test_procel(tmp_path):
    root = make_procel(tmp_path / "ProceL_dataset")
    with pytest.warns(UserWarning, match="1 videos .* skipped .*perform_cpr/cpr_0003"):
        ds = open_dataset(f"procel:{root}")
    assert ds.tasks == ["perform_cpr", "tie_tie"]
    assert ds.steps == {"perform_cpr": ["check breathing", "give compression", "give breath"],
                        "tie_tie": ["make loop", "pull through"]}
    assert sorted(v.id for v in ds.videos) == ["cpr_0001", "cpr_0002", "tie_0001", "tie_0002", "tie_0003"]
    cpr = ds.video("cpr_0001")
    assert cpr.source == root / "perform_cpr" / "cpr_0001.mp4" and cpr.kind == "video"
    assert cpr.segments == [Segment(0, 0.0, 1.0), Segment(1, 1.0, 2.5), Segment(1, 4.0, 6.0)]
    assert cpr.superframes.shape == (4, 2)
    mid = cpr.superframes.mean(axis=1)  # frames are superframes: label each at its middle
    assert cpr.labels_at(mid).tolist() == [0, 1, -1, 1]
    v2 = ds.video("cpr_0002")
    assert v2.labels_at(v2.superframes.mean(axis=1)).tolist() == [2, -1, 1]
    assert ds.video("tie_0002").source == root / "tie_tie" / "videos" / "tie_0002.mp4"
    assert set(ds.split.values()) == {"train", "test"}


def test_procel_readme_mismatch(tmp_path):
    root = make_procel(tmp_path / "p")
    with open(root / "perform_cpr" / "readme.txt", "a") as fh:
        fh.write("https://youtu.be/y\tcpr_0041\n")
    with pytest.raises(ProclError, match="readme.txt lists 4 videos but .*data.mat annotates 3"):
        open_dataset(f"procel:{root}")


def test_procel_bad_mat(tmp_path):
    root = make_procel(tmp_path / "p")
    scipy.io.savemat(root / "tie_tie" / "data.mat", {"grammar": cell([np.array(["a"])])})
    with pytest.raises(ProclError, match="tie_tie/data.mat has no field 'key_steps_time'"):
        open_dataset(f"procel:{root}")
    save_procel_task(root / "tie_tie", ["make loop"], [
        {"name": "tie_0001", "steps": [[(3.0, 2.0)]], "superframes": [[0, 1]]},
    ])
    with pytest.raises(ProclError, match="key_steps_time of video 1, key-step 1: invalid segment 3..2"):
        open_dataset(f"procel:{root}")


def test_procel_without_tasks(tmp_path):
    write(tmp_path / "p" / "x" / "readme.txt")
    with pytest.raises(ProclError, match="no <task>/data.mat"):
        open_dataset(f"procel:{tmp_path / 'p'}")


# ----------------------------------------------------------------------------- action segmentation

BREAKFAST_FRAMES = {"P03_cam01_P03_coffee": 917, "P05_cam01_P05_coffee": 1119, "P06_cam01_P06_coffee": 472,
                    "P08_webcam01_P08_coffee": 271, "P09_cam01_P09_coffee": 571}


@pytest.mark.skipif(not BREAKFAST.is_dir(), reason="shared Breakfast sample not present")
def test_actseg_breakfast_sample():
    ds = open_dataset(f"actseg:{BREAKFAST}")
    assert ds.tasks == ["coffee"]
    # non-background labels occurring in the ground truth, by mapping id (2, 5, 6, 9)
    assert ds.steps == {"coffee": ["pour_milk", "pour_coffee", "take_cup", "pour_sugar"]}
    assert {v.id: len(v.frame_labels) for v in ds.videos} == BREAKFAST_FRAMES
    assert all(v.kind == "features" and v.feature_fps == 15.0 and v.task == "coffee" for v in ds.videos)
    video = ds.video("P08_webcam01_P08_coffee")
    names = (BREAKFAST / "groundTruth" / video.id).read_text().split()
    expected = [-1 if n == "SIL" else ds.steps["coffee"].index(n) for n in names]
    times = np.arange(len(names)) / video.feature_fps
    assert video.labels_at(times).tolist() == expected
    assert expected[0] == BACKGROUND and set(expected) == {-1, 1}  # SIL, then pour_coffee
    assert load_feature_array(video).shape == (271, 64)
    assert sorted(ds.split.values()).count("test") == 2


def make_actseg(root: Path) -> Path:
    mapping = "0 background\n1 cut\n2 peel\n3 mix\n4 SIL\n"
    write(root / "mapping" / "mapping.txt", mapping)
    (root / "features").mkdir(parents=True)
    # v1 stored [D, T] as MS-TCN does: D = 4 dims, T = 6 frames
    np.save(root / "features" / "v1.npy", np.arange(24, dtype=np.float32).reshape(4, 6))
    write(root / "groundTruth" / "v1.txt", "background\nmix\nmix\ncut\nSIL\ncut\n")
    np.save(root / "features" / "v2.npy", np.ones((3, 4), np.float32))  # [T, D]
    write(root / "groundTruth" / "v2.txt", "cut\ncut\nbackground\n")
    np.save(root / "features" / "v3.npy", np.ones((5, 4), np.float32))  # no ground truth
    return root


def test_actseg_generated_dt(tmp_path):
    root = make_actseg(tmp_path / "salads")
    ds = open_dataset(f"actseg:{root}")
    assert ds.tasks == ["salads"]  # no features subfolder: one task named after the root
    assert ds.steps == {"salads": ["cut", "mix"]}  # 'peel' never occurs
    v1 = ds.video("v1")
    assert v1.labels_at(np.arange(6) / 15.0).tolist() == [-1, 1, 1, 0, -1, 0]
    features = load_feature_array(v1)
    assert features.shape == (6, 4)
    assert features[:, 0].tolist() == [0, 1, 2, 3, 4, 5]  # the [D, T] array was transposed
    assert load_feature_array(ds.video("v2")).shape == (3, 4)
    assert ds.video("v3").frame_labels is None and not ds.video("v3").annotated
    write(root / "features.json", '{"fps": 30}')
    assert open_dataset(f"actseg:{root}").video("v1").feature_fps == 30.0


def test_region_grid_of_a_dataset(tmp_path, tiny_synth):
    """Videos have a region grid; [T, D] features (.npy or .txt) have none; [T, R, D] with R > 1 do."""
    assert specs.has_region_grid(open_dataset(f"folder:{tiny_synth}"))
    assert not specs.has_region_grid(open_dataset(f"actseg:{BREAKFAST}"))  # .txt rows
    assert not specs.has_region_grid(open_dataset(f"actseg:{make_actseg(tmp_path / 'a')}"))  # .npy [T, D]
    root = tmp_path / "feats"
    root.joinpath("videos", "t").mkdir(parents=True)
    np.save(root / "videos" / "t" / "v1.npy", np.zeros((5, 4, 8), np.float32))  # [T, R, D]
    assert specs.has_region_grid(open_dataset(f"folder:{root}"))
    np.save(root / "videos" / "t" / "v1.npy", np.zeros((5, 1, 8), np.float32))  # R = 1
    assert not specs.has_region_grid(open_dataset(f"folder:{root}"))


def test_actseg_errors(tmp_path):
    root = make_actseg(tmp_path / "a")
    write(root / "groundTruth" / "v2.txt", "cut\nstir\nbackground\n")
    with pytest.raises(ProclError, match="v2.txt line 2: the label 'stir' is not in mapping"):
        open_dataset(f"actseg:{root}")
    write(root / "groundTruth" / "v2.txt", "cut\ncut\n")
    with pytest.raises(ProclError, match=r"v2.npy has shape \[3, 4\] but .*v2.txt has 2 frames"):
        open_dataset(f"actseg:{root}")
    write(root / "groundTruth" / "v2.txt", "cut\ncut\ncut\n")
    write(root / "mapping" / "mapping.txt", "0 background\ncut\n")
    with pytest.raises(ProclError, match="mapping.txt line 2: 'cut' is not a line 'id name'"):
        open_dataset(f"actseg:{root}")


def test_actseg_task_subfolders_and_txt(tmp_path):
    root = tmp_path / "bf"
    write(root / "mapping" / "mapping.txt", "0 SIL\n1 pour_milk\n2 fry_egg\n")
    write(root / "features" / "milk" / "m1.txt", "0 1\n2 3\n4 5\n")
    write(root / "groundTruth" / "m1", "SIL\npour_milk\npour_milk\n")
    write(root / "features" / "egg" / "e1.txt", "1 1\n2 2\n")
    write(root / "groundTruth" / "e1", "fry_egg\nSIL\n")
    ds = open_dataset(f"actseg:{root}")
    assert ds.tasks == ["egg", "milk"]
    assert ds.steps == {"egg": ["fry_egg"], "milk": ["pour_milk"]}
    assert ds.video("m1").frame_labels.tolist() == [-1, 0, 0]
    assert load_feature_array(ds.video("m1")).tolist() == [[0, 1], [2, 3], [4, 5]]
    write(root / "groundTruth" / "e1", "fry_egg\nSIL\nSIL\n")
    with pytest.raises(ProclError, match="e1.txt have 2 rows but the video's ground truth has 3"):
        load_feature_array(open_dataset(f"actseg:{root}").video("e1"))


# ---------------------------------------------------------------- a dataset from uploaded files


def test_uploaded_videos_make_a_folder_dataset(tiny_synth, tmp_path, monkeypatch):
    from procl.upload import UploadError, create_dataset

    monkeypatch.setenv("PROCL_DATA", str(tmp_path / "data"))
    clips = sorted((tiny_synth / "videos").rglob("*.mp4"))
    files = [(p.name, p.read_bytes()) for p in clips[:6]]

    def problems(name, groups) -> str:
        with pytest.raises(UploadError) as err:
            create_dataset(name, groups)
        assert not name.strip() or not (tmp_path / "data" / name.strip()).exists() or name.strip() in ("taken", "mine")
        assert not [p for p in (tmp_path / "data").glob("*") if p.name not in ("taken", "mine")], "nothing is written"
        assert not list((tmp_path / "data").glob(".*.tmp")), "the temporary folder is removed"
        return "\n".join(err.value.problems)

    assert "give the dataset a name" in problems("", [("a", files[:3])])
    assert "is not allowed" in problems("my videos!", [("a", files[:3])])
    assert "reserved" in problems("features", [("a", files[:3])])
    (tmp_path / "data" / "taken").mkdir(parents=True)
    assert "exists already" in problems("taken", [("a", files[:3])])
    assert "no videos" in problems("x", [("", []), ("  ", [])])
    assert "has videos but no name" in problems("x", [("", files[:3])])
    assert "task name 'a/b' is not allowed" in problems("x", [("a/b", files[:3])])
    assert "given twice" in problems("x", [("a", files[:3]), ("a", files[3:6])])
    assert "'b' has no video" in problems("x", [("a", files[:3]), ("b", [])])
    found = problems("x", [("a", [*files[:2], ("notes.txt", b"hi"), (".hidden.mp4", b"")]),
                           ("b", [files[0], *files[3:5]])])
    assert "notes.txt (task 'a') is not a video: procl reads .mp4" in found
    assert "must not start with '.'" in found
    assert f"{files[0][0]} (task 'b') has the video id {Path(files[0][0]).stem!r} of another file in task 'a'" in found
    found = problems("x", [("a", [*files[:2], ("broken.mp4", b"\x00" * 999), ("empty.mkv", b"")]),
                           ("b", files[3:6])])
    assert "broken.mp4 (task 'a') is not a video OpenCV can decode" in found
    assert "empty.mkv (task 'a') is empty" in found
    assert not (tmp_path / "data" / "x").exists(), "one bad file: nothing is written"
    # every problem in one round: names, counts and ids, and the files that do not decode
    found = problems("x", [("a", [*files[:2], ("notes.txt", b"hi"), ("text.mp4", b"just text\n"), ("zero.mp4", b"")]),
                           ("b", [files[0]])])
    for part in ("notes.txt (task 'a') is not a video", "text.mp4 (task 'a') is not a video OpenCV can decode",
                 "zero.mp4 (task 'a') is empty", "'b' has one video", f"video id {Path(files[0][0]).stem!r}"):
        assert part in found, (part, found)

    root = create_dataset(" mine ", [("change  tire", files[:3]), ("", []), ("make tea", files[3:6])])
    assert root == tmp_path / "data" / "mine"
    ds = open_dataset(f"folder:{root}")
    assert ds.tasks == ["change tire", "make tea"] and len(ds.videos) == 6 and not ds.annotated
    assert sorted(ds.split.values()).count("train") == 4, "two of each task's three videos to train on"
    assert (root / "videos" / "make tea" / files[3][0]).read_bytes() == files[3][1]
    assert "exists already" in problems("mine", [("a", files[:3])])
