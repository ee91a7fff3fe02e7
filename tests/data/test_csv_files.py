"""CSV files as people save them: encodings (Excel's cp1252, UTF-16 with or without a byte-order mark), cells past
the csv module's field limit, duplicate and empty header names, and image paths that leave the CSV's folder. Every
CSV medclass reads (label files, box files, split files, predict's lists) goes through data/csv_file.py."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from PIL import Image

from medclass.data import open_dataset
from medclass.data.audit import audit_dataset
from medclass.data.csv_file import FIELD_LIMIT, read_csv_table
from medclass.data.splits import load_splits
from medclass.core.errors import DataError, DataWarning
from medclass.explain.boxdata import read_box_file
from medclass.inference.batch import expand_inputs

ACCENTED = ["filename,label", "bénin/écho_1.png,bénin", "malin/m_2.png,malin", "bénin/écho_3.png,bénin"]


def write_images(folder: Path, names) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 128).save(folder / name)


def accented_data(tmp_path: Path, encoding: str, bom: bytes = b"") -> Path:
    write_images(tmp_path, [line.split(",")[0] for line in ACCENTED[1:]])
    path = tmp_path / "labels.csv"
    path.write_bytes(bom + ("\r\n".join(ACCENTED) + "\r\n").encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_a_latin1_csv_reads_its_accented_names_right_and_says_how_it_was_read(tmp_path, encoding):
    path = accented_data(tmp_path, encoding)
    with pytest.warns(DataWarning, match=r"labels.csv: not UTF-8 .*line 2.*read as cp1252.*iconv -f cp1252 -t utf-8"):
        ds = open_dataset(path)
    assert ds.classes == ["bénin", "malin"]
    assert ds.samples[0].source == str(tmp_path / "bénin" / "écho_1.png")


@pytest.mark.parametrize("encoding,bom", [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"),
                                          ("utf-16-le", b""), ("utf-32-le", b"\xff\xfe\x00\x00"),
                                          ("utf-8", b"\xef\xbb\xbf")])
def test_utf16_and_utf32_csvs_with_or_without_a_byte_order_mark_read_alike(tmp_path, encoding, bom):
    path = accented_data(tmp_path, encoding, bom)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = open_dataset(path)
    assert ds.classes == ["bénin", "malin"] and len(ds) == 3
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    # a byte-order mark names its encoding; without one the guess is said, in one warning
    assert said == [] if bom else (len(said) == 1 and "labels.csv: no byte-order mark; read as UTF-16-LE" in said[0])


def test_bytes_no_encoding_explains_name_the_line_the_offset_and_how_to_convert(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b"filename,label\na.png,x\nb\x81\x8d.png,y\n")  # 0x81 is undefined in cp1252 too
    with pytest.raises(DataError, match=r"labels.csv: not UTF-8 \(byte 0x81 at line 3, byte offset 24\) "
                                        r"nor cp1252.*iconv -f ENCODING -t utf-8"):
        read_csv_table(path, "CSV label file")


def test_a_file_mixing_utf8_with_another_encoding_is_refused_rather_than_garbled(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes("filename,label\na.png,bénin\n".encode() + "b.png,bénin\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"labels.csv: mixes UTF-8 \(byte 0xC3 at line 2, byte offset 22\) with "
                                        r"another encoding \(byte 0xE9 at line 3, byte offset 35\)"):
        read_csv_table(path, "CSV label file")


def test_a_cell_past_the_field_limit_names_the_file_and_the_row(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("filename,label\na.png,x\nb.png,\"" + "y" * (FIELD_LIMIT + 10) + "\"\nc.png,z\n")
    with pytest.raises(DataError, match=r"labels.csv: row 3: a cell of more than 131,072 characters"):
        read_csv_table(path, "CSV label file")
    unclosed = tmp_path / "unclosed.csv"  # the usual cause: a quote opened and never closed
    unclosed.write_text("filename,label\n\"a.png,x\n" + "b.png,y\n" * 20000)
    with pytest.raises(DataError, match=r"unclosed.csv: row 2: .*a quote .* never closed"):
        read_csv_table(unclosed, "CSV label file")


@pytest.mark.parametrize("content,message", [
    ("filename,label,label\na.png,x,y\n", r"labels.csv: column name 'label' appears more than once \(columns 2, 3\)"),
    # medclass finds columns whatever their case, so these two are one name too
    ("filename,Label,label\na.png,x,y\n", r"'Label' appears more than once \(columns 2, 3\)"),
    ("filename,,label\na.png,x,cat\n", r"labels.csv: column 2 has no name in the header but holds values "
                                       r"\(row 2: 'x'\)"),
    ("filename,label\na.png,Mass, left\n", r"labels.csv: row 2 has 3 cells, the header names 2"),  # comma unquoted
], ids=["duplicate", "duplicate-by-case", "unnamed-with-values", "row-longer-than-header"])
def test_headers_that_hide_a_column_are_refused_naming_the_columns(tmp_path, content, message):
    write_images(tmp_path, ["a.png"])
    (tmp_path / "labels.csv").write_text(content)
    with pytest.raises(DataError, match=message):
        open_dataset(tmp_path / "labels.csv")


@pytest.mark.parametrize("header,trailing", [("filename,label,,,", ",,,"), ("filename, label", "")])
def test_empty_trailing_unnamed_columns_and_spaces_around_names_are_read(tmp_path, header, trailing):
    """NIH's BBox_List_2017.csv and Excel leave unnamed empty columns at the end of every row."""
    write_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "labels.csv").write_text(f"{header}\na.png,cat{trailing}\nb.png,dog{trailing}\n")
    assert open_dataset(tmp_path / "labels.csv").classes == ["cat", "dog"]


def test_split_files_box_files_and_predict_lists_share_the_reading(tmp_path):
    path = accented_data(tmp_path, "cp1252")
    ds = open_dataset(path)
    splits = tmp_path / "splits.csv"
    rows = [f"{s.source},{split}" for s, split in zip(ds.samples, ("train", "val", "test"))]
    splits.write_bytes(("source,split\n" + "\n".join(rows) + "\n").encode("cp1252"))
    with pytest.warns(DataWarning, match="splits.csv: not UTF-8"):
        assert [s.split for s in load_splits(ds, splits).samples] == ["train", "val", "test"]
    splits.write_text("source,split,split\nx,train,test\n")
    with pytest.raises(DataError, match=r"splits.csv: column name 'split' appears more than once"):
        load_splits(ds, splits)

    listed = tmp_path / "list.csv"
    listed.write_bytes("path\nbénin/écho_1.png\n".encode("utf-16"))
    assert expand_inputs([listed]) == [tmp_path / "bénin" / "écho_1.png"]
    listed.write_text("path,path\na.png,b.png\n")
    with pytest.raises(DataError, match=r"list.csv: column name 'path' appears more than once"):
        expand_inputs([listed])

    boxes = tmp_path / "boxes.csv"
    boxes.write_bytes("filename,label,xmin,ymin,xmax,ymax\nbénin/écho_1.png,bénin,1,2,3,4\n".encode("cp1252"))
    with pytest.warns(DataWarning, match="boxes.csv: not UTF-8"):
        assert list(read_box_file(boxes)) == ["bénin/écho_1.png"]


def outside_data(tmp_path: Path) -> Path:
    """A CSV in data/ naming one image inside, one by '../', one by an absolute path and one through a symlink that
    points out of data/."""
    write_images(tmp_path / "data", ["in.png"])
    write_images(tmp_path / "elsewhere", ["up.png", "abs.png", "target.png"])
    (tmp_path / "data" / "link.png").symlink_to(tmp_path / "elsewhere" / "target.png")
    path = tmp_path / "data" / "labels.csv"
    path.write_text(f"filename,label\nin.png,a\n../elsewhere/up.png,b\n{tmp_path / 'elsewhere' / 'abs.png'},a\n"
                    "link.png,b\n")
    return path


def test_images_outside_the_csvs_folder_are_followed_and_listed_with_their_reason(tmp_path):
    ds = open_dataset(outside_data(tmp_path))
    assert len(ds) == 4  # legitimate in a CSV: followed
    outside = ds.meta["outside"]
    assert [(o["row"], o["image"]) for o in outside] == [(3, "../elsewhere/up.png"),
                                                          (4, str(tmp_path / "elsewhere" / "abs.png")),
                                                          (5, "link.png")]
    assert [o["reason"] for o in outside] == ["'..' leads out of the CSV's folder", "absolute path",
                                              f"symbolic link to {tmp_path / 'elsewhere' / 'target.png'}"]
    report = audit_dataset(ds)
    assert report["outside_csv_folder"] == outside and report["summary"]["outside_csv_folder"] == 3
