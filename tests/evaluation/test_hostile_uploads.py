"""Hostile submissions (issue 13, cases 6, 7, 8, 10, 11, 14): small files that would cost a naive reader GBs.

The bomb tests validate in a subprocess under a 1 GiB address-space cap (``resource.setrlimit``) and assert a
clean rejection: a problem naming the cause, a short report, exit code 0. Before this code, the same files
took 1-3 GB (see docs/leaderboard-security.md and benchmarks/hostile_uploads.py).
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from nerfseg.evaluation import archive, archive_tar
from nerfseg.evaluation import submission_files, submission_problems
from nerfseg.evaluation.archive import Limits, clean_stale_extractions
from nerfseg.evaluation.submission import Problem, SubmissionError, require_valid, validate_submission
from nerfseg.text import printable
from tests import hostile

REPO = Path(__file__).resolve().parents[2]
CAP = 1 << 30
S0 = "tiny_000"

# Peak RSS from /proc's VmHWM: it belongs to this process's own address space, whereas ru_maxrss survives
# exec on Linux and would report the (large) pytest parent's RSS at fork time.
_CHILD = r"""
import json, resource, sys
def peak_kb():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[3]), int(sys.argv[3])))
from nerfseg.evaluation.submission import validate_submission
r = validate_submission(sys.argv[1], sys.argv[2])
print(json.dumps({"ok": r.ok, "problems": [str(p) for p in r.problems], "text": len(str(r)),
                  "rss_kb": peak_kb()}))
"""


def validate_capped(path: Path, bench: Path, cap: int = CAP) -> dict:
    """validate_submission in a child process limited to ``cap`` bytes of address space."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(bench), str(cap)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, f"the validator died under a {cap >> 20} MiB cap:\n{proc.stderr[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# case 7: tar headers


@pytest.mark.parametrize("kind,what", [("gnu", "GNU long-name header"), ("pax", "pax extended header")])
def test_huge_tar_headers_are_refused_before_they_are_read(kind: str, what: str, tiny_benchmark: Path, tmp_path: Path) -> None:
    path = hostile.tar_with_long_header(tmp_path / f"{kind}.tar.gz", 256, kind)
    assert path.stat().st_size < 1 << 20  # 256 MiB of header in under 1 MiB
    out = validate_capped(path, tiny_benchmark)
    assert not out["ok"]
    assert any(f"has a {what} of 2684354" in p and "over the limit of 4096 bytes (refused before reading it)" in p
               for p in out["problems"]), out
    assert out["text"] < 1000  # the name is not copied into the report


def test_pax_and_gnu_tars_with_long_names_still_validate(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path) -> None:
    """Real long names (over the 100 bytes of a ustar name) go through pax or GNU headers: still accepted."""
    wrapper = "w" * 150  # the single folder an archive tool wrapped the submission in
    for fmt, name in ((tarfile.PAX_FORMAT, "pax.tar.gz"), (tarfile.GNU_FORMAT, "gnu.tar"), (tarfile.USTAR_FORMAT, "ustar.tgz")):
        mode = "w" if name.endswith(".tar") else "w:gz"
        with tarfile.open(tmp_path / name, mode, format=fmt) as tf:
            for p in sorted(gt_submission.rglob("*")):
                if p.is_file():
                    arc = p.relative_to(gt_submission).as_posix()
                    tf.add(p, arc if fmt == tarfile.USTAR_FORMAT else f"{wrapper}/{arc}")
        result = validate_submission(tmp_path / name, tiny_benchmark)
        assert result.ok, f"{name}: {result}"
    assert not any(private_tmp.iterdir())


def test_long_member_names_are_cut_short_in_problems(tiny_benchmark: Path, tmp_path: Path) -> None:
    raw = hostile._member(b"meta.json", b"{}")
    long_name = ("x" * 3000 + "/../evil").encode()
    body = f" path={long_name.decode()}\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    record = f"{n}{body}"
    raw += hostile._tar_header(b"PaxHeader/x", len(record), b"x") + record.encode() + hostile._pad(len(record))
    raw += hostile._member(b"placeholder", b"x") + bytes(1024)
    (tmp_path / "long.tar.gz").write_bytes(gzip.compress(raw))
    result = validate_submission(tmp_path / "long.tar.gz", tiny_benchmark)
    hits = [p for p in result.problems if "'..' in the path" in p.message]
    assert hits and len(hits[0].message) < 300, str(result)


# ---------------------------------------------------------------------------------------------
# case 8: zip central directory


def test_zip_with_millions_of_entries_is_counted_from_its_end_record(tiny_benchmark: Path, tmp_path: Path) -> None:
    path = hostile.zip_with_many_entries(tmp_path / "many.zip", 2_000_000)
    out = validate_capped(path, tiny_benchmark)
    assert not out["ok"]
    assert any("the archive has 2000000 members, over the limit of 100000" in p for p in out["problems"]), out
    # about 200 MB is the interpreter with evaluation loaded; reading the directory costs about 1 GB
    assert out["rss_kb"] < 400 << 10, f"peak RSS {out['rss_kb'] >> 10} MB"


def test_zip_whose_end_record_lies_about_its_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory is walked as a stream too: a count of 5 in the end record does not let 200 entries in."""
    path = hostile.zip_with_many_entries(tmp_path / "lie.zip", 200)
    data = bytearray(path.read_bytes())
    z64 = data.rfind(b"PK\x06\x06")
    struct.pack_into("<QQ", data, z64 + 24, 5, 5)
    path.write_bytes(bytes(data))
    opened: list[Path] = []
    monkeypatch.setattr(archive.zipfile, "ZipFile", lambda p, *a, **k: opened.append(p))
    problems = archive._extract_zip(path, tmp_path / "out", Limits(max_members=100))
    assert problems == ["the archive has more than 100 members (its directory says 5)"]
    assert opened == []  # zipfile never got to read the directory
    data = bytearray(hostile.zip_with_many_entries(tmp_path / "big.zip", 1000).read_bytes())
    (tmp_path / "big.zip").write_bytes(bytes(data))
    problems = archive._extract_zip(tmp_path / "big.zip", tmp_path / "out", Limits(max_directory_bytes=10_000))
    assert problems == ["the archive's central directory is 47000 bytes, over the limit of 10000 bytes"]


def test_zip_entry_names_must_be_utf8_when_flagged(tmp_path: Path) -> None:
    name = b"tiny_000/\xff\xfe.bin"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x800, 0, 0, 0, 0, 0, 0, len(name), 0) + name
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x800, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, 0) + name
    eocd = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local), 0)
    (tmp_path / "u.zip").write_bytes(local + central + eocd)
    problems = archive._extract_zip(tmp_path / "u.zip", tmp_path / "out", Limits())
    assert problems == ["member name 'tiny_000/\\xff\\xfe.bin' is not valid UTF-8 (name files in UTF-8)"]


# ---------------------------------------------------------------------------------------------
# case 6: instances3d.h5 tables


def test_h5_table_of_many_gzip_columns_is_refused_from_its_headers(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path) -> None:
    sub = hostile.copy_tree(gt_submission, tmp_path / "sub")
    hostile.h5_many_columns(sub / S0 / "instances3d.h5", columns=48)
    assert (sub / S0 / "instances3d.h5").stat().st_size < 1 << 20
    out = validate_capped(sub, tiny_benchmark)
    assert not out["ok"]
    assert any(f"scene {S0}: instances3d.h5: /instances has 49 members, at most 16 columns" in p for p in out["problems"]), out


@pytest.mark.parametrize("columns,needle", [
    ({"id": (65535,), "class_index": (65535,), "score": (65535, 120)}, "has shape (65535, 120)"),
    ({"id": (3,), "class_index": (3,), "score": (65535,)}, "columns have different lengths [3, 65535]"),
    ({"id": (70000,), "class_index": (70000,), "score": (70000,)}, "at most 65535 scalars"),
    ({"id": (3,), "class_index": (3,), "score": (3,), "aabb": (65535, 6)}, "columns have different lengths [3, 65535]"),
])
def test_h5_columns_are_checked_before_any_is_read(columns: dict, needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "instances3d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("grid/instance", data=np.zeros((8, 6, 5), np.uint16))
        for name, shape in columns.items():
            f.create_dataset(f"instances/{name}", shape=shape, dtype="f8", compression="gzip")
    reads: list[str] = []
    original = h5py.Dataset.__getitem__
    monkeypatch.setattr(h5py.Dataset, "__getitem__", lambda ds, key: (reads.append(ds.name), original(ds, key))[1])
    data, problems = submission_files.read_instances3d(path, (8, 6, 5))
    assert data is None and any(needle in p for p in problems), problems
    assert [r for r in reads if r.startswith("/instances")] == []


def test_h5_extra_columns_are_tolerated_not_read(tmp_path: Path) -> None:
    path = tmp_path / "instances3d.h5"
    grid = np.zeros((8, 6, 5), np.uint16)
    grid[0, 0, 0] = 1
    with h5py.File(path, "w") as f:
        f.create_dataset("grid/instance", data=grid)
        for name, data in {"id": [1], "class_index": [3], "score": [0.5], "aabb": np.zeros((1, 6))}.items():
            f.create_dataset(f"instances/{name}", data=np.asarray(data))
    data, problems = submission_files.read_instances3d(path, (8, 6, 5))
    assert problems == [] and data is not None and set(data["instances"]) == {"id", "class_index", "score"}


def test_h5_with_very_many_objects_is_refused_before_it_is_walked(tmp_path: Path) -> None:
    path = tmp_path / "instances3d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("grid/instance", data=np.zeros((8, 6, 5), np.uint16))
        for i in range(300):
            f.create_group(f"junk/g{i}")
    data, problems = submission_files.read_instances3d(path, (8, 6, 5))
    assert data is None and problems == ["instances3d.h5: the file holds more than 256 objects (an instances3d.h5 needs a handful)"]


def test_h5_links_and_external_storage_are_refused(tmp_path: Path) -> None:
    soft, ext = tmp_path / "soft.h5", tmp_path / "ext.h5"
    with h5py.File(soft, "w") as f:
        f.create_dataset("data", data=np.zeros((8, 6, 5), np.uint16))
        f["grid/instance"] = h5py.SoftLink("/data")
        f["elsewhere"] = h5py.ExternalLink("/etc/passwd", "/x")
    data, problems = submission_files.read_instances3d(soft, (8, 6, 5))
    assert data is None and problems == ["instances3d.h5: links other than hard links are not allowed: ['elsewhere', 'grid/instance']"]
    (tmp_path / "raw.bin").write_bytes(bytes(480))
    with h5py.File(ext, "w") as f:
        f.create_dataset("grid/instance", shape=(8, 6, 5), dtype="u2", external=[(str(tmp_path / "raw.bin"), 0, 480)])
    data, problems = submission_files.read_instances3d(ext, (8, 6, 5))
    assert data is None and problems == ["instances3d.h5: dataset /grid/instance stores its data outside the file"]


def test_h5_compound_table_reads_only_the_needed_fields(tmp_path: Path) -> None:
    path = tmp_path / "instances3d.h5"
    table = np.zeros(2, dtype=[("id", "<u2"), ("class_index", "u1"), ("score", "<f4"), ("note", h5py.string_dtype())])
    table["id"], table["class_index"], table["score"], table["note"] = [1, 2], [3, 4], [0.5, 0.25], ["a", "b"]
    grid = np.zeros((8, 6, 5), np.uint16)
    grid[0, 0, 0], grid[1, 1, 1] = 1, 2
    with h5py.File(path, "w") as f:
        f.create_dataset("grid/instance", data=grid)
        f.create_dataset("instances", data=table)
    data, problems = submission_files.read_instances3d(path, (8, 6, 5))
    assert problems == [] and data is not None
    assert data["instances"]["id"].tolist() == [1, 2] and data["instances"]["score"].tolist() == [0.5, 0.25]


# ---------------------------------------------------------------------------------------------
# case 10: problem counts and lengths, expansion ratio, temp folders


def test_problems_are_capped(submission_copy: Path, tiny_benchmark: Path) -> None:
    hostile.panoptic_json_with_problems(submission_copy / S0 / "panoptic.json", 100_000)
    result = validate_submission(submission_copy, tiny_benchmark)
    assert not result.ok
    assert len(result.problems) == submission_problems.MAX_PROBLEMS + 1
    assert "more problem(s) not listed" in result.problems[-1].message
    assert len(str(result)) < 50_000
    with pytest.raises(SubmissionError) as err:
        require_valid(submission_copy, tiny_benchmark)
    assert len(err.value.problems) == submission_problems.MAX_PROBLEMS + 1  # capping a capped list changes nothing
    assert err.value.meta is not None and err.value.meta["method"]  # the meta validation read travels along


def test_problem_text_is_escaped_and_bounded() -> None:
    p = Problem("evil\nscene: forged line", "f\x1b[31m\udcff", "bad\r\nthing " + "x" * 5000)
    text = str(p)
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert "evil\\nscene" in text and "\\x1b" in text and "\\udcff" in text
    assert len(p.message) <= submission_problems.MAX_MESSAGE_CHARS
    text.encode("utf-8")  # never a lone surrogate
    assert printable("a\u2028b") == "a\\u2028b"


def test_folder_scene_with_newline_is_reported_escaped(submission_copy: Path, tiny_benchmark: Path) -> None:
    (submission_copy / "x\ny").mkdir()
    result = validate_submission(submission_copy, tiny_benchmark)
    assert any(p.scene == "x\\ny" and "extra scene" in p.message for p in result.problems), str(result)
    assert "x\ny" not in str(result)


def test_expansion_ratio_is_bounded_before_writing(tiny_benchmark: Path, tmp_path: Path, private_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.tar_bomb(tmp_path / "bomb.tar.gz", 60)
    assert path.stat().st_size < 200_000  # 60 MiB (under the 64 MiB file limit) in under 200 kB
    writes: list[str] = []
    original = archive.MemberWriter.write
    monkeypatch.setattr(archive.MemberWriter, "write", lambda self, name, *a: (writes.append(name), original(self, name, *a)))
    result = validate_submission(path, tiny_benchmark)
    assert any("over 100x its own size" in p.message for p in result.problems), str(result)
    assert writes == [] and not any(private_tmp.iterdir())
    # the same archive within an explicit, looser ratio: extracted (then rejected for its content)
    result = validate_submission(path, tiny_benchmark, limits=Limits(max_expansion_ratio=10_000))
    assert writes and not any("its own size" in p.message for p in result.problems)


def test_stale_extraction_folders_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    made = {
        "dead": tmp_path / f"{archive.TEMP_PREFIX}{dead.pid}-abc",
        "mine_unused": tmp_path / f"{archive.TEMP_PREFIX}{os.getpid()}-def",
        "alive": tmp_path / f"{archive.TEMP_PREFIX}1-ghi",  # pid 1 always runs
        "legacy_old": tmp_path / f"{archive.TEMP_PREFIX}xyz123",
        "legacy_new": tmp_path / f"{archive.TEMP_PREFIX}uvw456",
        "other": tmp_path / "someone-elses-folder",
    }
    for folder in made.values():
        (folder / "scene").mkdir(parents=True)
        (folder / "scene" / "big.bin").write_bytes(bytes(1000))
    os.utime(made["legacy_old"], (time.time() - 86400, time.time() - 86400))
    removed, freed = clean_stale_extractions(tmp_path)
    assert (removed, freed) == (3, 3000)
    assert {k for k, f in made.items() if f.exists()} == {"alive", "legacy_new", "other"}


def test_an_extraction_in_progress_is_not_swept(gt_submission: Path, tmp_path: Path, private_tmp: Path) -> None:
    with archive.extraction_folder() as folder:
        assert folder.name.startswith(f"{archive.TEMP_PREFIX}{os.getpid()}-")
        assert clean_stale_extractions() == (0, 0)
        assert folder.exists()
    assert not folder.exists()


# ---------------------------------------------------------------------------------------------
# case 11: names that are not UTF-8


def test_tar_member_name_not_utf8_is_a_clear_problem(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path, private_tmp: Path) -> None:
    path = hostile.tar_with_bad_utf8_name(tmp_path / "u.tar.gz", gt_submission)
    with tarfile.open(path) as tf:
        assert any("\udcff" in m.name for m in tf)  # what tarfile (and the old validator) made of it
    result = validate_submission(path, tiny_benchmark)
    assert [p.message for p in result.problems] == ["member name 'tiny_000/caf\\xe9\\xff.bin' is not valid UTF-8 (name files in UTF-8)"]
    str(result).encode("utf-8")
    assert not any(private_tmp.iterdir())


def test_member_names_with_control_characters_are_refused(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path) -> None:
    raw = b"".join(hostile._member(p.relative_to(gt_submission).as_posix().encode(), p.read_bytes())
                   for p in sorted(gt_submission.rglob("*")) if p.is_file())
    raw += hostile._member(b"tiny_000/line\nbreak.bin", b"x") + bytes(1024)
    (tmp_path / "c.tar.gz").write_bytes(gzip.compress(raw))
    result = validate_submission(tmp_path / "c.tar.gz", tiny_benchmark)
    assert [p.message for p in result.problems] == [
        "member 'tiny_000/line\\nbreak.bin': the name contains control characters (newlines, tabs, escapes)"]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["ustar", "gnu", "pax"])
def test_the_tar_parser_reads_what_tarfile_reads(fmt: int, tmp_path: Path) -> None:
    """The streaming header parser against tarfile on the archives tarfile writes: same names, types, sizes, data."""
    import io as pyio

    entries = [("meta.json", b"{}"), ("d" * 60 + "/" + "e" * 60 + "/long.bin", b"x" * 1000),
               ("scène_ü/frame.png", b"\x89PNG" * 300), ("empty.txt", b""), ("f" * 99, b"y")]
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz", format=fmt) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, pyio.BytesIO(data))
        folder = tarfile.TarInfo("a_folder")
        folder.type = tarfile.DIRTYPE
        tf.addfile(folder)
        link = tarfile.TarInfo("a_link")
        link.type, link.linkname = tarfile.SYMTYPE, "meta.json"
        tf.addfile(link)
    with tarfile.open(path) as tf:
        expected = [(m.name, m.type, m.size, tf.extractfile(m).read() if m.isreg() else b"") for m in tf]
    got = []
    with archive_tar.open_tar_stream(path) as stream:
        reader = archive_tar._TarReader(stream, Limits(), 1 << 30)
        for entry in reader:
            data = reader.data().read(1 << 20) if entry.type in archive_tar._REGULAR else b""
            name = entry.name.rstrip("/") if entry.type == b"5" else entry.name  # tarfile strips a folder's slash
            got.append((name, entry.type, entry.size if entry.type in archive_tar._REGULAR else 0, data))
    assert got == [(n, t, s if t in archive_tar._REGULAR else 0, d) for n, t, s, d in expected]


@pytest.mark.parametrize("key,value,needle", [
    ("description", "caf\udce9", "'description' is not valid text"),
    ("method", "two\nlines", "'method' must be one line of printable text"),
    ("prior", "\udcff", "'prior' is not valid text"),
])
def test_meta_text_that_no_page_can_show_is_a_problem(key: str, value: str, needle: str, submission_copy: Path, tiny_benchmark: Path) -> None:
    meta = json.loads((submission_copy / "meta.json").read_text())
    meta[key] = value
    (submission_copy / "meta.json").write_text(json.dumps(meta))  # JSON escapes: the file itself is valid UTF-8
    result = validate_submission(submission_copy, tiny_benchmark)
    assert any(p.scene is None and needle in p.message for p in result.problems), str(result)
    str(result).encode("utf-8")


def test_archives_without_a_known_suffix_are_recognised_by_content(gt_submission: Path, tiny_benchmark: Path, tmp_path: Path) -> None:
    from nerfseg.evaluation.submission import pack_submission

    tgz = pack_submission(gt_submission, tmp_path / "s.tar.gz").rename(tmp_path / "upload.bin")
    zipped = pack_submission(gt_submission, tmp_path / "s.zip").rename(tmp_path / "upload")
    assert archive.sniff_kind(tgz) == "tar" and archive.sniff_kind(zipped) == "zip"
    assert validate_submission(tgz, tiny_benchmark).ok and validate_submission(zipped, tiny_benchmark).ok
    bomb = hostile.tar_with_long_header(tmp_path / "g.tar.gz", 64, "gnu").rename(tmp_path / "bomb.bin")
    assert archive.sniff_kind(bomb) == "tar"  # sniffing reads one block: the header, never its payload
    assert "over the limit of 4096 bytes" in validate_submission(bomb, tiny_benchmark).problems[0].message
