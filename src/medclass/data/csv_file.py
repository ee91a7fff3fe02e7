"""Opening a user's CSV file as people save it: the one reader of every CSV medclass is given (label files, box
files, split files, predict's lists of images).

Encoding: a byte-order mark names it (UTF-8, UTF-16, UTF-32: what Excel's "Unicode" and "CSV UTF-8" write); else
UTF-16 without a mark when every other byte is 0; else UTF-8 when the bytes are valid UTF-8; else cp1252 (Excel's
"CSV" on Western-European Windows, and a superset of latin-1's printable characters, so a latin-1 file reads the
same), said in a DataWarning since it is a guess. Bytes that are none of these, and a file mixing UTF-8 with
another encoding (which cp1252 would garble), are an error naming the line and byte offset and how to convert. A statistical detector (charset-normalizer) was
tried and not used: on files as short as a label CSV it misreads latin-1 (e.g. "café,naïve" as cp1250, "naďve").

Layout: header names are stripped of spaces; a name given twice (whatever its case: columns are found by name
case-insensitively) is refused, naming the columns, as is a column without a name that holds values (empty unnamed
columns, which Excel and NIH's BBox_List_2017.csv leave at the end of rows, are dropped). A row with more non-empty
cells than the header names (a comma inside a cell that is not quoted) is refused, and so is a cell longer than the
csv module's field limit, naming its row (the usual cause: a quote opened and never closed).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from pathlib import Path

from medclass.core.errors import DataError, DataWarning

FIELD_LIMIT = 131_072  # the csv module's own limit; no path or label cell comes near it
# longest mark first: UTF-32-LE's mark begins with UTF-16-LE's
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
FALLBACK = "cp1252"
# a 2- or 3-byte UTF-8 character; in cp1252 or latin-1 text such pairs ('Ã©') are all but absent
UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}")

Rows = list[tuple[int, dict[str, str]]]


def read_csv_table(path: str | Path, what: str) -> tuple[list[str], Rows]:
    """The header (stripped names) and (row number, {name: cell}) of each non-blank row, the header being row 1.
    A cell missing at the end of a short row reads as ''. `what` names the file in the not-found error."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected a {what})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read it ({exc.strerror})") from None
    records = _records(path, decode_text(path, data))
    header = [name.strip() for name in next(records, [])]
    body = [(number, cells) for number, cells in enumerate(records, start=2)]
    _check_names(path, header, body)
    return [name for name in header if name], [(number, _named(header, cells)) for number, cells in body]


def _named(header: list[str], cells: list[str]) -> dict[str, str]:
    """{name: cell} of one row, '' for a cell missing at its end; unnamed (empty) columns left out."""
    if len(cells) < len(header):
        cells = cells + [""] * (len(header) - len(cells))
    return {name: cell for name, cell in zip(header, cells) if name}


def decode_text(path: Path, data: bytes) -> str:
    """`data` as text, in the encoding its byte-order mark names or the first of UTF-16, UTF-8 and cp1252 that fits;
    a guess other than UTF-8 is said in a DataWarning."""
    for bom, encoding in BOMS:
        if data.startswith(bom):
            return _decode(path, data, encoding)
    utf16 = _utf16_without_bom(data)
    if utf16:
        warnings.warn(f"{path}: no byte-order mark; read as {utf16.upper()} (every other byte is 0)", DataWarning,
                      stacklevel=3)
        return _decode(path, data, utf16)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        not_utf8 = exc.start
    mixed = UTF8_SEQUENCE.search(data)
    if mixed:  # cp1252 would garble the UTF-8 names ('é' as 'Ã©'): one line pasted from elsewhere, most likely
        raise DataError(f"{path}: mixes UTF-8 ({_byte_at(data, mixed.start())}) with another encoding "
                        f"({_byte_at(data, not_utf8)}); expected one encoding: retype the characters of that line "
                        "in UTF-8")
    try:
        text = data.decode(FALLBACK)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 ({_byte_at(data, not_utf8)}) nor {FALLBACK}/latin-1 "
                        f"({_byte_at(data, exc.start)}); {_convert(path)}") from None
    warnings.warn(f"{path}: not UTF-8 ({_byte_at(data, not_utf8)}); read as {FALLBACK} (Windows' Western European, "
                  f"latin-1 reads alike); if names look wrong, {_convert(path, FALLBACK)}",
                  DataWarning, stacklevel=3)
    return text


def _utf16_without_bom(data: bytes) -> str | None:
    """'utf-16-le' or 'utf-16-be' when the zero bytes sit at every other place, as in mostly-ASCII UTF-16."""
    if len(data) < 2 or len(data) % 2 or b"\x00" not in data:
        return None
    even, odd = data[0::2].count(0), data[1::2].count(0)
    half = len(data) // 2
    if odd > 0.4 * half and even == 0:
        return "utf-16-le"
    if even > 0.4 * half and odd == 0:
        return "utf-16-be"
    return None


def _decode(path: Path, data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid {encoding.upper()}, the encoding its start says "
                        f"({_byte_at(data, exc.start)}); {_convert(path)}") from None


def _byte_at(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    return f"byte 0x{data[offset]:02X} at line {line}, byte offset {offset}"


def _convert(path: Path, encoding: str = "ENCODING") -> str:
    """How to make the file UTF-8; ENCODING when medclass cannot tell which one it is in."""
    unknown = " with the encoding it was saved in (e.g. cp1250, mac-roman, shift-jis; `iconv -l` lists them)"
    return (f"save it as UTF-8 (Excel: 'CSV UTF-8') or convert it: iconv -f {encoding} -t utf-8 {path} > utf8.csv"
            + (unknown if encoding == "ENCODING" else ""))


def _records(path: Path, text: str):
    """The file's records as lists of cells, blank lines skipped; a csv error names the row it arose in."""
    reader = csv.reader(io.StringIO(text, newline=""))
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _csv_error(path, number, reader.line_num, exc) from None
        if cells:
            number += 1
            yield cells


def _csv_error(path: Path, number: int, line: int, exc: csv.Error) -> DataError:
    row = "the header" if number == 1 else f"row {number}"
    if "field limit" in str(exc):
        return DataError(f"{path}: {row}: a cell of more than {csv.field_size_limit():,} characters (reading it "
                         f"reached line {line}); usually a quote \" opened in that row and never closed; expected a "
                         "path or a label per cell")
    return DataError(f"{path}: {row}: not valid CSV ({exc})")


def _check_names(path: Path, header: list[str], body: list[tuple[int, list[str]]]) -> None:
    """Refuse a name given to two columns, an unnamed column that holds values and values past the header."""
    columns: dict[str, list[int]] = {}
    for k, name in enumerate(header):
        if name:
            columns.setdefault(name.lower(), []).append(k)
    repeated = [(header[ks[0]], ks) for ks in columns.values() if len(ks) > 1]
    if repeated:
        named = "; ".join(f"column name {name!r} appears more than once (columns "
                          f"{', '.join(str(k + 1) for k in ks)})" for name, ks in repeated)
        raise DataError(f"{path}: {named}; expected each column named once: rename or delete the copies")
    unnamed = [k for k, name in enumerate(header) if not name]
    for number, cells in body:
        if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header):]):
            last = max(k for k, cell in enumerate(cells) if cell.strip())
            raise DataError(f"{path}: row {number} has {last + 1} cells, the header names {len(header)} "
                            f"(a comma inside a cell that is not quoted?); expected a cell per column")
        k = next((k for k in unnamed if k < len(cells) and cells[k].strip()), None)
        if k is not None:
            raise DataError(f"{path}: column {k + 1} has no name in the header but holds values (row {number}: "
                            f"{cells[k]!r}); expected a name for every column that holds data")
