"""Submission validation (SPEC section 4): every listed problem reported with scene, frame and a clear
message, all at once; hostile archives stopped before anything escapes or expands; reference submissions
that round-trip through folder, .zip and .tar.gz form.

Over 600 lines: one table of problem cases and one of hostile archive members, each read best whole.
"""

from __future__ import annotations

import gzip
import io as pyio
import json
import os
import shutil
import stat
import struct
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pytest
from PIL import Image

from nerfseg.evaluation import archive
from nerfseg.evaluation.gt import load_gt3d, load_gt_scene
from nerfseg.evaluation.reference import write_gt_submission, write_prior_submission
from nerfseg.evaluation.submission import (
    Limits,
    Problem,
    SubmissionError,
    ValidationResult,
    open_submission,
    pack_submission,
    require_valid,
    validate_submission,
    write_instances3d,
)
from nerfseg import io, spec
from nerfseg.errors import InputError, NerfsegError
from tests.evaluation.fixtures import make_tiny_benchmark
from tests.hostile import png_rgb16

S0, S1 = "tiny_000", "tiny_001"


# ---------------------------------------------------------------------------------------------
# helpers that break a valid submission folder


def _load(path: Path) -> Any:
    return json.loads(path.read_text())


def _save(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def _edit_meta(**changes: Any) -> Callable[[Path], None]:
    def edit(sub: Path) -> None:
        meta = _load(sub / "meta.json")
        meta.update(changes)
        _save(sub / "meta.json", meta)

    return edit


def _edit_ann(scene: str, frame: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(sub: Path) -> None:
        path = sub / scene / "panoptic.json"
        data = _load(path)
        ann = next(a for a in data["annotations"] if a["file_name"] == f"{frame}.png")
        fn(ann)
        _save(path, data)

    return edit


def _edit_json(scene: str, fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def edit(sub: Path) -> None:
        path = sub / scene / "panoptic.json"
        data = _load(path)
        fn(data)
        _save(path, data)

    return edit


def _png(scene: str, frame: str) -> Callable[[Path], Path]:
    return lambda sub: sub / scene / "panoptic" / f"{frame}.png"


def _write_image(scene: str, frame: str, array: np.ndarray, fmt: str = "PNG") -> Callable[[Path], None]:
    def edit(sub: Path) -> None:
        Image.fromarray(array).save(_png(scene, frame)(sub), format=fmt)

    return edit


def _truncate(scene: str, frame: str) -> Callable[[Path], None]:
    def edit(sub: Path) -> None:
        path = _png(scene, frame)(sub)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])

    return edit


def _first_thing(ann: dict) -> dict:
    return next(s for s in ann["segments_info"] if s["category_id"] != 0)


def _h5(scene: str, shape: tuple[int, int, int] = (8, 6, 5), table: dict | None = None, ids_in_grid: tuple[int, ...] = (1,)) -> Callable[[Path], None]:
    def edit(sub: Path) -> None:
        path = sub / scene / "instances3d.h5"
        path.unlink(missing_ok=True)
        grid = np.zeros(shape, np.uint16)
        for k, i in enumerate(ids_in_grid):
            grid.reshape(-1)[k] = i
        with h5py.File(path, "w") as f:
            f.create_dataset("grid/instance", data=grid)
            cols = table if table is not None else {"id": [1], "class_index": [3], "score": [0.5]}
            g = f.create_group("instances")
            for name, values in cols.items():
                g[name] = np.asarray(values)

    return edit


def _symlink_frame(sub: Path) -> None:
    path = _png(S0, "0000")(sub)
    path.unlink()
    os.symlink("/etc/passwd", path)


def _oversize_frame(sub: Path) -> None:
    with open(_png(S0, "0000")(sub), "r+b") as f:
        f.truncate(65 << 20)  # sparse: 65 MiB on paper, nothing on disk


# (id, mutation, scene, frame, text the message must contain)
CASES: list[tuple[str, Callable[[Path], Any], str | None, str | None, str]] = [
    ("meta_missing", lambda s: (s / "meta.json").unlink(), None, None, "meta.json is missing"),
    ("meta_malformed", lambda s: (s / "meta.json").write_text("{"), None, None, "meta.json: malformed JSON"),
    ("meta_not_object", lambda s: (s / "meta.json").write_text("[]"), None, None, "JSON object"),
    ("meta_method", _edit_meta(method=""), None, None, "'method'"),
    ("meta_uses_gt_masks", _edit_meta(uses_gt_masks="yes"), None, None, "'uses_gt_masks'"),
    ("meta_spec_version", _edit_meta(spec_version="2"), None, None, "'spec_version' is '2'"),
    ("meta_semantic_only", _edit_meta(semantic_only="yes"), None, None, "'semantic_only'"),
    ("missing_scene", lambda s: shutil.rmtree(s / S1), S1, None, "missing scene"),
    ("extra_scene", lambda s: shutil.copytree(s / S1, s / "tiny_999"), "tiny_999", None, "extra scene"),
    ("top_level_file", lambda s: (s / "README.txt").write_text("hi"), None, None, "unexpected file 'README.txt'"),
    ("scene_extra_entry", lambda s: (s / S0 / "notes.txt").write_text("hi"), S0, None, "unexpected entry 'notes.txt'"),
    ("panoptic_dir_missing", lambda s: shutil.rmtree(s / S0 / "panoptic"), S0, None, "panoptic/ folder is missing"),
    ("panoptic_json_missing", lambda s: (s / S0 / "panoptic.json").unlink(), S0, None, "panoptic.json is missing"),
    ("panoptic_json_malformed", lambda s: (s / S0 / "panoptic.json").write_text("[1,"), S0, None, "panoptic.json: malformed JSON"),
    ("panoptic_json_no_annotations", _edit_json(S0, lambda d: d.pop("annotations")), S0, None, "'annotations' list"),
    ("missing_frame_png", lambda s: _png(S0, "0003")(s).unlink(), S0, "0003", "missing frame: panoptic/0003.png"),
    ("extra_frame_png", lambda s: shutil.copyfile(_png(S0, "0000")(s), _png(S0, "0001")(s)), S0, "0001", "extra frame"),
    ("non_png_entry", lambda s: shutil.copyfile(_png(S0, "0000")(s), s / S0 / "panoptic" / "0000.jpg"), S0, "0000", "unexpected entry panoptic/0000.jpg"),
    ("missing_annotation", _edit_json(S0, lambda d: d["annotations"].pop(1)), S0, "0003", "panoptic.json has no annotation"),
    ("extra_annotation", _edit_json(S0, lambda d: d["annotations"].append({"file_name": "0002.png", "image_id": "0002", "segments_info": []})), S0, "0002", "extra frame: panoptic.json"),
    ("double_annotation", _edit_json(S0, lambda d: d["annotations"].append(d["annotations"][0])), S0, "0000", "annotated twice"),
    ("image_id_mismatch", _edit_ann(S0, "0000", lambda a: a.update(image_id="0005")), S0, "0000", "image_id '0005'"),
    ("wrong_size", _write_image(S0, "0000", np.zeros((16, 16, 3), np.uint8)), S0, "0000", "image is 16x16, the view is 32x24"),
    ("not_png", _write_image(S0, "0000", np.zeros((24, 32, 3), np.uint8), fmt="JPEG"), S0, "0000", "not a PNG file"),
    ("corrupt_png", _truncate(S0, "0003"), S0, "0003", "corrupt PNG"),
    ("gray_png", _write_image(S1, "0000", np.zeros((24, 32), np.uint8)), S1, "0000", "PNG is 8-bit greyscale"),
    ("rgb16_png", lambda s: png_rgb16(_png(S1, "0003")(s), 32, 24), S1, "0003", "PNG is 16-bit RGB; a COCO panoptic PNG is 8-bit RGB"),
    ("id_in_png_not_json", _edit_ann(S0, "0000", lambda a: a["segments_info"].remove(_first_thing(a))), S0, "0000", "ids in the PNG but not in panoptic.json"),
    ("id_in_json_not_png", _edit_ann(S0, "0000", lambda a: a["segments_info"].append({"id": 4242, "category_id": 3})), S0, "0000", "ids in panoptic.json but not in the PNG: [4242]"),
    ("unknown_category", _edit_ann(S1, "0003", lambda a: _first_thing(a).update(category_id=11)), S1, "0003", "unknown category id 11"),
    ("negative_category", _edit_ann(S1, "0003", lambda a: _first_thing(a).update(category_id=-1)), S1, "0003", "unknown category id -1"),
    ("id_zero", _edit_ann(S0, "0003", lambda a: a["segments_info"].append({"id": 0, "category_id": 0})), S0, "0003", "id 0 is VOID"),
    ("duplicate_id", _edit_ann(S0, "0003", lambda a: a["segments_info"].append(dict(a["segments_info"][0]))), S0, "0003", "duplicate segment id"),
    ("id_not_int", _edit_ann(S0, "0003", lambda a: a["segments_info"].append({"id": "7", "category_id": 1})), S0, "0003", "no integer 'id'"),
    ("id_too_big", _edit_ann(S0, "0003", lambda a: a["segments_info"].append({"id": 1 << 24, "category_id": 1})), S0, "0003", "outside 1..16777215"),
    ("bad_score", _edit_ann(S0, "0003", lambda a: _first_thing(a).update(score="high")), S0, "0003", "finite number"),
    ("h5_wrong_shape", _h5(S0, shape=(4, 4, 4)), S0, None, "the GT grid of gt3d.h5 is (8, 6, 5)"),
    ("h5_not_hdf5", lambda s: (s / S0 / "instances3d.h5").write_bytes(b"\x89HDF garbage"), S0, None, "not a readable HDF5 file"),
    ("h5_id_not_in_table", _h5(S1, ids_in_grid=(1, 2)), S1, None, "ids in /grid/instance but not in /instances: [2]"),
    ("h5_id_not_in_grid", _h5(S1, table={"id": [1, 5], "class_index": [3, 3], "score": [0.5, 0.4]}), S1, None, "ids in /instances but not in /grid/instance: [5]"),
    ("h5_bad_class", _h5(S1, table={"id": [1], "class_index": [0], "score": [0.5]}), S1, None, "unknown class indices [0]"),
    ("h5_no_score", _h5(S1, table={"id": [1], "class_index": [3]}), S1, None, "no 'score' column"),
    ("h5_duplicate_ids", _h5(S1, table={"id": [1, 1], "class_index": [3, 3], "score": [0.5, 0.5]}), S1, None, "duplicate instance ids [1]"),
    ("h5_no_grid", lambda s: h5py.File(s / S0 / "instances3d.h5", "w").close(), S0, None, "neither /grid/instance nor /grid/semantic"),
    ("symlink", _symlink_frame, S0, "0000", "symbolic link"),
    ("oversize_file", _oversize_frame, S0, "0000", "over the file size limit of 67108864 bytes"),
]


def _find(result: ValidationResult, scene: str | None, frame: str | None, needle: str) -> Problem:
    hits = [p for p in result.problems if p.scene == scene and p.frame == frame and needle in p.message]
    assert hits, f"no problem ({scene}, {frame}, {needle!r}) in:\n{result}"
    return hits[0]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_problem_is_reported_with_scene_and_frame(case, submission_copy: Path, tiny_benchmark: Path, private_tmp: Path) -> None:  # type: ignore[no-untyped-def]
    _, mutate, scene, frame, needle = case
    mutate(submission_copy)
    result = validate_submission(submission_copy, tiny_benchmark)
    assert not result.ok
    problem = _find(result, scene, frame, needle)
    text = str(problem)
    if scene:
        assert f"scene {scene}" in text
    if frame:
        assert f"frame {frame}" in text
    with pytest.raises(SubmissionError) as err:
        require_valid(submission_copy, tiny_benchmark)
    assert str(problem) in str(err.value)
    assert isinstance(err.value, NerfsegError)
    assert not any(private_tmp.iterdir())  # validation wrote nothing


def test_all_problems_are_reported_together(submission_copy: Path, tiny_benchmark: Path) -> None:
    chosen = ["meta_uses_gt_masks", "extra_scene", "wrong_size", "unknown_category", "h5_wrong_shape", "missing_frame_png", "id_zero", "extra_annotation", "gray_png", "h5_no_score"]
    by_id = {c[0]: c for c in CASES}
    for name in chosen:
        by_id[name][1](submission_copy)
    _edit_ann(S1, "0003", lambda a: a["segments_info"].append({"id": 4242, "category_id": 3}))(submission_copy)
    result = validate_submission(submission_copy, tiny_benchmark)
    assert not result.ok
    for name in chosen:
        _, _, scene, frame, needle = by_id[name]
        _find(result, scene, frame, needle)
    _find(result, S1, "0003", "ids in panoptic.json but not in the PNG: [4242]")
    assert len(result.problems) == len(chosen) + 1  # each fault once, no noise
    err = SubmissionError(result.problems, submission_copy)
    lines = str(err).splitlines()
    assert len(lines) == len(result.problems) + 1 and str(len(result.problems)) in lines[0]
    assert all(str(p) in line for p, line in zip(result.problems, lines[1:]))


def test_semantic_only_is_allowed(submission_copy: Path, tiny_benchmark: Path) -> None:
    _edit_meta(semantic_only=True)(submission_copy)
    result = validate_submission(submission_copy, tiny_benchmark)
    assert result.ok, str(result)
    with open_submission(submission_copy, tiny_benchmark) as sub:
        assert sub.semantic_only and sub.method == "gt"


def test_semantic_grid_only_instances3d_is_valid(submission_copy: Path, tiny_benchmark: Path) -> None:
    gt3d = load_gt3d(spec.scene_dir(tiny_benchmark, S0))
    path = submission_copy / S0 / "instances3d.h5"
    path.unlink()
    write_instances3d(path, None, semantic=gt3d["semantic"])
    assert validate_submission(submission_copy, tiny_benchmark).ok
    with open_submission(submission_copy, tiny_benchmark) as sub:
        data = sub.instances3d(S0)
        assert data is not None and data["instance"] is None and np.array_equal(data["semantic"], gt3d["semantic"])
        assert sub.instances3d(S1)["instances"] is not None  # type: ignore[index]
        pred3d = sub.pred3d(S0)
        assert pred3d is not None and pred3d.instance is None and len(pred3d.classes) == 0 and np.array_equal(pred3d.semantic, gt3d["semantic"])


WEIRD_JSON = ["null", "[]", '"text"', "5", '{"annotations": null}', '{"annotations": [null, 3]}', '{"annotations": [{"file_name": 5}]}',
              '{"annotations": [{"file_name": "0000.png", "segments_info": "x"}]}',
              '{"annotations": [{"file_name": "0000.png", "segments_info": [null, {"id": 1.5, "category_id": true}, {"id": 1e400}]}]}',
              '{"annotations": [{"file_name": "0000.png", "segments_info": [{"id": 5, "category_id": 1, "score": 1' + "0" * 400 + '}]}]}',
              '{"annotations": [{"file_name": "0000.png", "segments_info": [{"id": 5, "category_id": 1, "score": NaN}]}]}',
              '{"annotations": [{"file_name": "0000.png", "image_id": [], "segments_info": [{"id": 1' + "0" * 5000 + "}]}]}",
              "[" * 100000, "\xff\xfe"]


@pytest.mark.parametrize("text", WEIRD_JSON, ids=range(len(WEIRD_JSON)))
@pytest.mark.parametrize("target", ["meta.json", f"{S0}/panoptic.json"])
def test_weird_json_is_a_problem_not_a_crash(text: str, target: str, submission_copy: Path, tiny_benchmark: Path) -> None:
    (submission_copy / target).write_bytes(text.encode("utf-8", "surrogateescape") if text != "\xff\xfe" else b"\xff\xfe")
    result = validate_submission(submission_copy, tiny_benchmark)
    assert not result.ok and result.problems
    assert all(isinstance(p, Problem) and p.message for p in result.problems)


def test_fuzzed_folders_never_crash(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    files = sorted(p.relative_to(gt_submission) for p in gt_submission.rglob("*") if p.is_file())
    for it in range(40):
        sub = Path(shutil.copytree(gt_submission, tmp_path / f"fuzz{it}"))
        for _ in range(int(rng.integers(1, 4))):
            path = sub / files[int(rng.integers(len(files)))]
            if not path.exists():
                continue
            data = bytearray(path.read_bytes())
            op = int(rng.integers(4))
            if op == 0:
                data = data[: int(rng.integers(len(data)))]
            elif op == 1:
                for pos in rng.integers(0, len(data), size=int(rng.integers(1, 9))):
                    data[pos] = int(rng.integers(256))
            elif op == 2:
                data = bytearray(rng.integers(0, 256, size=int(rng.integers(1, 200))).astype(np.uint8).tobytes())
            else:
                path.unlink()
                continue
            path.write_bytes(bytes(data))
        result = validate_submission(sub, tiny_benchmark)  # must not raise
        assert isinstance(result, ValidationResult)
        assert result.ok == (not result.problems)
        shutil.rmtree(sub)


def test_fuzzed_archives_never_crash(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path) -> None:
    rng = np.random.default_rng(11)
    for suffix in (".zip", ".tar.gz"):
        clean = pack_submission(gt_submission, tmp_path / f"clean{suffix}").read_bytes()
        for it in range(15):
            data = bytearray(clean)
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
                data[pos] = int(rng.integers(256))
            path = tmp_path / f"fuzz{it}{suffix}"
            path.write_bytes(bytes(data))
            result = validate_submission(path, tiny_benchmark)
            assert result.ok == (not result.problems)
    assert not any(private_tmp.iterdir())


# ---------------------------------------------------------------------------------------------
# round trips and reading


@pytest.mark.parametrize("form", ["folder", ".zip", ".tar.gz", ".tgz", "wrapped.zip"])
def test_gt_submission_round_trip(form: str, gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path) -> None:
    if form == "folder":
        path = gt_submission
    elif form == "wrapped.zip":  # `zip -r sub.zip mysub/`: everything under one top folder
        path = tmp_path / "wrapped.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for p in sorted(gt_submission.rglob("*")):
                if p.is_file():
                    zf.write(p, f"mysub/{p.relative_to(gt_submission).as_posix()}")
    else:
        path = pack_submission(gt_submission, tmp_path / f"sub{form}")
    result = validate_submission(path, tiny_benchmark)
    assert result.ok, str(result)
    assert result.meta is not None and result.meta["method"] == "gt"
    with open_submission(path, tiny_benchmark) as sub:
        root = sub.root
        assert sub.scenes() == [S0, S1] and sub.uses_gt_masks
        for scene in sub.scenes():
            gt = load_gt_scene(tiny_benchmark, scene)
            assert sub.frames(scene) == list(gt.frame_names)
            for name in gt.frame_names:
                ids, segments = sub.frame(scene, name)
                gt_ids, gt_segments = gt.frame(name)
                assert ids.dtype == np.uint32 and np.array_equal(ids, gt_ids)
                assert {i: s["category_id"] for i, s in segments.items()} == {i: s["category_id"] for i, s in gt_segments.items()}
                assert all(s["score"] == 1.0 for s in segments.values())
            data = sub.instances3d(scene)
            gt3d = load_gt3d(gt.root)
            assert data is not None and np.array_equal(data["instance"], gt3d["instance"]) and np.array_equal(data["semantic"], gt3d["semantic"])
            assert dict(zip(data["instances"]["id"].tolist(), data["instances"]["class_index"].tolist())) == gt3d["classes"]
            # the same, as the metrics take them
            pred = sub.frame_pred(scene, gt.frame_names[0])
            assert np.array_equal(pred.panoptic, gt.frame_gt(gt.frame_names[0]).panoptic)
            pred3d = sub.pred3d(scene)
            assert pred3d is not None and np.array_equal(pred3d.instance, gt3d["instance"]) and list(pred3d.ids) == sorted(gt3d["classes"])
            assert np.all(np.asarray(pred3d.scores) == 1.0)
    if form != "folder":
        assert not root.exists()
    assert not any(private_tmp.iterdir())


def test_open_without_benchmark_checks_each_read(submission_copy: Path) -> None:
    _edit_ann(S0, "0000", lambda a: a["segments_info"].pop())(submission_copy)
    with open_submission(submission_copy) as sub:
        assert not sub.validated
        sub.frame(S0, "0003")
        with pytest.raises(InputError, match="only in PNG"):
            sub.frame(S0, "0000")
        with pytest.raises(InputError, match="not annotated"):
            sub.frame(S0, "0001")
        with pytest.raises(InputError, match="invalid scene name"):
            sub.frame("../x", "0000")


def test_open_submission_refuses_an_invalid_one(submission_copy: Path, tiny_benchmark: Path) -> None:
    CASES[0][1](submission_copy)
    _png(S1, "0003")(submission_copy).unlink()
    with pytest.raises(SubmissionError) as err:
        with open_submission(submission_copy, tiny_benchmark):
            pytest.fail("an invalid submission must not be opened")
    assert len(err.value.problems) == 2
    with pytest.raises(SubmissionError, match="does not exist"):
        with open_submission(submission_copy / "nope.zip"):
            pass


def test_validating_a_folder_leaves_it_untouched(gt_submission: Path, tiny_benchmark: Path) -> None:
    before = {p: io.sha256_file(p) for p in gt_submission.rglob("*") if p.is_file()}
    assert validate_submission(gt_submission, tiny_benchmark).ok
    assert {p: io.sha256_file(p) for p in gt_submission.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------------------------------------
# hostile archives


def _zip_with(gt_submission: Path, path: Path, extra: list[tuple[zipfile.ZipInfo | str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(gt_submission.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(gt_submission).as_posix())
        for info, data in extra:
            zf.writestr(info, data)
    return path


def _tar_with(gt_submission: Path, path: Path, extra: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for p in sorted(gt_submission.rglob("*")):
            if p.is_file():
                tf.add(p, p.relative_to(gt_submission).as_posix())
        for info, data in extra:
            info.size = len(data) if info.isreg() else 0
            tf.addfile(info, pyio.BytesIO(data) if info.isreg() else None)
    return path


def _tarinfo(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


def _zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


@pytest.mark.filterwarnings("ignore:Duplicate name")
@pytest.mark.parametrize(
    "kind,member,needle",
    [
        ("zip", ("../evil.txt", b"x"), "'..' in the path escapes"),
        ("zip", (f"{S0}/../../evil.txt", b"x"), "'..' in the path escapes"),
        ("zip", ("/tmp/nerfseg_evil_abs.txt", b"x"), "absolute path"),
        ("zip", ("C:\\evil.txt", b"x"), "absolute path"),
        ("zip", _zip_symlink(f"{S0}/link", "/etc/passwd"), "symbolic link"),
        ("zip", (f"{S0}/panoptic.json", b"{}"), "appears twice"),
        ("tar", (_tarinfo("../evil.txt"), b"x"), "'..' in the path escapes"),
        ("tar", (_tarinfo("/tmp/nerfseg_evil_abs.txt"), b"x"), "absolute path"),
        ("tar", (_tarinfo(f"{S0}/link", tarfile.SYMTYPE, "/etc/passwd"), b""), "symbolic link"),
        ("tar", (_tarinfo(f"{S0}/hard", tarfile.LNKTYPE, "meta.json"), b""), "hard link"),
        ("tar", (_tarinfo(f"{S0}/dev", tarfile.CHRTYPE), b""), "not a regular file"),
        ("tar", (_tarinfo(f"{S0}/fifo", tarfile.FIFOTYPE), b""), "not a regular file"),
    ],
    ids=["zip-slip", "zip-slip-nested", "zip-absolute", "zip-drive", "zip-symlink", "zip-duplicate", "tar-slip", "tar-absolute", "tar-symlink", "tar-hardlink", "tar-device", "tar-fifo"],
)
def test_hostile_members_are_refused_before_extraction(kind: str, member: tuple, needle: str, gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    writes: list[str] = []
    original = archive.MemberWriter.write
    monkeypatch.setattr(archive.MemberWriter, "write", lambda self, name, *a: (writes.append(name), original(self, name, *a)))
    path = (_zip_with if kind == "zip" else _tar_with)(gt_submission, tmp_path / f"bad.{'zip' if kind == 'zip' else 'tar.gz'}", [member])
    result = validate_submission(path, tiny_benchmark)
    assert not result.ok
    hits = [p for p in result.problems if needle in p.message]
    assert hits, str(result)
    assert writes == []  # refused from the headers: not one member was extracted
    assert not (tmp_path / "evil.txt").exists() and not Path("/tmp/nerfseg_evil_abs.txt").exists()
    assert not any(private_tmp.iterdir())


def test_zip_bomb_is_refused_from_its_header(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path) -> None:
    path = tmp_path / "bomb.zip"
    _zip_with(gt_submission, path, [])
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as zf, zf.open(f"{S0}/bomb.bin", "w") as out:
        zero = bytes(1 << 20)
        for _ in range(65):  # 65 MiB of zeros, about 65 KiB compressed
            out.write(zero)
    assert path.stat().st_size < 1 << 20
    result = validate_submission(path, tiny_benchmark)
    assert not result.ok
    assert any("declares 68157440 bytes, over the file size limit of 67108864 bytes" in p.message for p in result.problems), str(result)
    assert not any(private_tmp.iterdir())


def test_total_size_and_member_limits(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path) -> None:
    extra = [(f"{S0}/pad{i}.bin", bytes(150 << 10)) for i in range(3)]
    path = _zip_with(gt_submission, tmp_path / "big.zip", extra)
    result = validate_submission(path, tiny_benchmark, limits=Limits(max_total_bytes=256 << 10, max_file_bytes=200 << 10))
    assert any("total size limit of 262144 bytes" in p.message for p in result.problems), str(result)
    result = validate_submission(path, tiny_benchmark, limits=Limits(max_members=5))
    assert any("over the limit of 5" in p.message for p in result.problems), str(result)
    tgz = pack_submission(gt_submission, tmp_path / "sub.tar.gz")
    result = validate_submission(tgz, tiny_benchmark, limits=Limits(max_members=5))
    assert any("more than 5 members" in p.message for p in result.problems), str(result)
    # the same limits hold for a plain folder
    result = validate_submission(gt_submission, tiny_benchmark, limits=Limits(max_file_bytes=200))
    assert any(p.scene == S0 and p.frame == "0000" and "over the file size limit of 200 bytes" in p.message for p in result.problems), str(result)
    with pytest.raises(InputError):
        Limits(max_file_bytes=0)


def _patch_zip_sizes(data: bytes, name: bytes, size: int) -> bytes:
    """Rewrite the uncompressed size of member ``name`` in its local and central headers (a lying header)."""
    buf = bytearray(data)
    # (header signature, offset of the name length, offset of the name, offset of the uncompressed size)
    for sig, len_at, name_at, size_at in ((b"PK\x03\x04", 26, 30, 22), (b"PK\x01\x02", 28, 46, 24)):
        pos = 0
        while (pos := buf.find(sig, pos)) != -1:
            n = struct.unpack_from("<H", buf, pos + len_at)[0]
            if buf[pos + name_at : pos + name_at + n] == name:
                struct.pack_into("<I", buf, pos + size_at, size)
            pos += 4
    return bytes(buf)


def test_zip_with_lying_size_does_not_get_past(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path) -> None:
    path = _zip_with(gt_submission, tmp_path / "lie.zip", [(f"{S0}/filler.bin", bytes(1 << 20))])
    path.write_bytes(_patch_zip_sizes(path.read_bytes(), f"{S0}/filler.bin".encode(), 1000))
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(f"{S0}/filler.bin").file_size == 1000  # the header lies: 1 MiB really follows
    result = validate_submission(path, tiny_benchmark)
    assert not result.ok
    assert any("filler.bin" in p.message and "cannot be extracted" in p.message for p in result.problems), str(result)
    assert not any(private_tmp.iterdir())


def _raw_tar_member(name: str, declared: int, data: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = declared
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    return header + data + bytes(-len(data) % 512)


def test_tar_with_lying_sizes_does_not_get_past(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    members = [p for p in sorted(gt_submission.rglob("*")) if p.is_file()]
    frame = f"{S0}/panoptic/0000.png"

    def build(declared: Callable[[int], int]) -> Path:
        raw = b""
        for p in members:
            rel = p.relative_to(gt_submission).as_posix()
            if rel != frame:
                raw += _raw_tar_member(rel, p.stat().st_size, p.read_bytes())
        data = (gt_submission / frame).read_bytes()
        raw += _raw_tar_member(frame, declared(len(data)), data) + bytes(1024)
        path = tmp_path / f"lie{declared(100)}.tar.gz"
        path.write_bytes(gzip.compress(raw))
        return path

    # header says fewer bytes than follow: exactly the declared bytes come out, the frame is cut short
    result = validate_submission(build(lambda n: 20), tiny_benchmark)
    assert not result.ok
    _find(result, S0, "0000", "corrupt PNG")
    # header says more than the limit: refused before a single byte is written
    writes: list[str] = []
    original = archive.MemberWriter.write
    monkeypatch.setattr(archive.MemberWriter, "write", lambda self, name, *a: (writes.append(name), original(self, name, *a)))
    result = validate_submission(build(lambda n: 100 << 20), tiny_benchmark)
    assert any("declares 104857600 bytes" in p.message for p in result.problems), str(result)
    assert writes == []
    # header says more than follows (truncated archive): corrupt, not a crash
    result = validate_submission(build(lambda n: n + 5000), tiny_benchmark)
    assert not result.ok
    assert not any(private_tmp.iterdir())


def test_writer_counts_actual_bytes(tmp_path: Path) -> None:
    """The byte counter is the last line of defence when a decompressor yields more than the header said."""
    writer = archive.MemberWriter(tmp_path, Limits(max_total_bytes=5000, max_file_bytes=2048))
    with pytest.raises(archive.ArchiveAbort, match="more bytes than its header declares"):
        writer.write("a", ["a"], pyio.BytesIO(bytes(100)), 10)
    with pytest.raises(archive.ArchiveAbort, match="file size limit"):
        writer.write("b", ["b"], pyio.BytesIO(bytes(3000)), 1 << 30)
    writer.write("c", ["c"], pyio.BytesIO(bytes(2000)), 2000)
    writer.write("d", ["d"], pyio.BytesIO(bytes(2000)), 2000)
    with pytest.raises(archive.ArchiveAbort, match="total size limit"):
        writer.write("e", ["e"], pyio.BytesIO(bytes(2000)), 2000)
    with pytest.raises(archive.ArchiveAbort, match="appears twice"):
        writer.write("c", ["c"], pyio.BytesIO(b""), 0)


@pytest.mark.parametrize("name,data,needle", [("x.zip", b"PK\x03\x04garbage", "not a readable zip"), ("x.tar.gz", b"\x1f\x8bgarbage", "not a readable tar"), ("x.rar", b"Rar!", "neither a folder")])
def test_not_an_archive(name: str, data: bytes, needle: str, tiny_benchmark: Path, tmp_path: Path) -> None:
    (tmp_path / name).write_bytes(data)
    result = validate_submission(tmp_path / name, tiny_benchmark)
    assert not result.ok and needle in result.problems[0].message
    assert "does not exist" in validate_submission(tmp_path / "missing", tiny_benchmark).problems[0].message


# ---------------------------------------------------------------------------------------------
# reference submissions


def _class_map(ids: np.ndarray, segments: dict[int, dict[str, Any]]) -> np.ndarray:
    """Per-pixel class (-1 on VOID) of a panoptic id map."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    lut = np.array([segments[i]["category_id"] if i else -1 for i in uniq.tolist()])
    return lut[inverse].reshape(ids.shape)


def test_prior_submission(tiny_benchmark: Path, tmp_path: Path) -> None:
    out = write_prior_submission(tiny_benchmark, "gt", tmp_path / "prior")
    result = validate_submission(out, tiny_benchmark)
    assert result.ok, str(result)
    assert result.meta is not None and result.meta["method"] == "prior-gt" and result.meta["prior"] == "gt" and result.meta["uses_gt_masks"] is True
    with open_submission(out, tiny_benchmark) as sub:
        for scene in sub.scenes():
            gt = load_gt_scene(tiny_benchmark, scene)
            for name in gt.frame_names:
                ids, segs = sub.frame(scene, name)
                gt_ids, gt_segs = gt.frame(name)
                # the gt prior permutes ids per view but keeps every pixel's class and the void
                assert np.array_equal(_class_map(ids, segs), _class_map(gt_ids, gt_segs))
                assert set(segs) != set(gt_segs) and all(s["score"] == 0.9 for s in segs.values())
            assert not sub.has_instances3d(scene)


def test_reference_writes_are_atomic(tiny_benchmark: Path, tmp_path: Path) -> None:
    out = tmp_path / "refs" / "gt"
    write_gt_submission(tiny_benchmark, out)
    marker = out / "marker"
    marker.write_text("old")
    with pytest.raises(InputError, match="already exists"):
        write_gt_submission(tiny_benchmark, out)
    assert marker.exists()
    write_gt_submission(tiny_benchmark, out, overwrite=True)
    assert not marker.exists() and validate_submission(out, tiny_benchmark).ok
    with pytest.raises(InputError, match="prior 'sim-m2f' not found.*available: \\['gt'\\]"):
        write_prior_submission(tiny_benchmark, "sim-m2f", tmp_path / "refs" / "prior")
    with pytest.raises(InputError, match="invalid prior name"):
        write_prior_submission(tiny_benchmark, "../gt", tmp_path / "refs" / "prior")
    assert sorted(p.name for p in (tmp_path / "refs").iterdir()) == ["gt"]  # no half-written folder, no temp left


def test_reference_refuses_to_publish_an_invalid_submission(tmp_path: Path) -> None:
    bench = make_tiny_benchmark(tmp_path / "bench", num_scenes=1, seed=5)
    pdir = spec.scene_dir(bench, S0) / "priors" / "gt"
    data = _load(pdir / "panoptic.json")
    data["annotations"][0]["segments_info"].pop()
    _save(pdir / "panoptic.json", data)
    with pytest.raises(SubmissionError, match="ids in the PNG but not in panoptic.json"):
        write_prior_submission(bench, "gt", tmp_path / "out" / "prior")
    assert not (tmp_path / "out" / "prior").exists() and not any((tmp_path / "out").iterdir())


def test_val_split(tmp_path: Path) -> None:
    bench = make_tiny_benchmark(tmp_path / "bench", num_scenes=3, val_scenes=1, seed=2)
    out = write_gt_submission(bench, tmp_path / "val", split="val")
    assert validate_submission(out, bench, split="val").ok
    result = validate_submission(out, bench, split="test")
    assert {(p.scene, p.message.split(":")[0]) for p in result.problems} == {("tiny_000", "missing scene"), ("tiny_001", "missing scene"), ("tiny_002", "extra scene")}
