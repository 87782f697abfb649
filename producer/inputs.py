"""Reading campaign input: id lists, CSV and JSONL manifests, campaign files.

Readers stream: they yield one :class:`Row` (or one :class:`Problem`) at a time, so a
million-line input never sits in memory. Problems with a single row are yielded and
collected by the caller; input that cannot be read at all (missing file, binary data,
not UTF-8, an enormous line, broken CSV quoting) raises :class:`InputError` at once.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import tomllib
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import yaml

from bulktag.errors import UserError
from producer.campaign import IdBlock, Row, TargetFields
from providers.rules import Tag

# Longest line accepted: a CSV row with 20 tags of 128+128 characters is about 5 KiB.
MAX_LINE_BYTES = 16 * 1024
TARGET_COLUMNS = ("provider", "profile", "region", "project", "resource_type")
TAG_PREFIX = "tag:"
# Ids a manifest reader gathers into blocks before handing them on.
MAX_HELD_IDS = 20_000


class InputError(UserError):
    """The input cannot be read at all; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Problem:
    where: str
    message: str
    code: str | None = None

    def __str__(self) -> str:
        suffix = f" [{self.code}]" if self.code else ""
        return f"{self.where}: {self.message}{suffix}"


Item = Row | IdBlock | Problem


def display_name(path: str) -> str:
    return "<stdin>" if path == "-" else path


@contextmanager
def open_binary(path: str) -> Iterator[IO[bytes]]:
    """The file (or stdin for ``-``) as bytes, gunzipped if it starts with the gzip magic."""
    if path == "-":
        raw: IO[bytes] = sys.stdin.buffer
        owned = False
    else:
        try:
            raw = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise InputError(f"{path}: cannot open: {exc.strerror}") from None
        owned = True
    try:
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
        if buffered.peek(2)[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=buffered, mode="rb") as unzipped:
                yield unzipped  # type: ignore[misc]
        else:
            yield buffered
    finally:
        if owned:
            raw.close()


CHUNK_BYTES = 1 << 20


def text_chunks(stream: IO[bytes], name: str) -> Iterator[tuple[int, list[str]]]:
    """(number of the first line, lines) a megabyte at a time, refusing binary data,
    non-UTF-8 text and enormous lines. Checking a whole chunk at once keeps the per-line
    cost of a million-line input in C."""
    first = 1
    rest = b""
    try:
        while True:
            data = stream.read(CHUNK_BYTES)
            if not data:
                if rest:
                    yield first, [_decode(name, first, rest)]
                return
            buf = rest + data
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                if len(buf) > MAX_LINE_BYTES:
                    _too_long(name, first)
                rest = buf
                continue
            body, rest = buf[:cut], buf[cut:]
            if len(rest) > MAX_LINE_BYTES:
                _too_long(name, first + body.count(b"\n"))
            raw = body.split(b"\n")
            raw.pop()  # after the last newline
            if max(map(len, raw)) > MAX_LINE_BYTES:
                _too_long(
                    name, first + next(i for i, r in enumerate(raw) if len(r) > MAX_LINE_BYTES)
                )
            text = _decode(name, first, body)
            if first == 1 and text.startswith("\ufeff"):
                text = text[1:]
            lines = text.split("\n")
            lines.pop()
            yield first, [line.removesuffix("\r") for line in lines] if "\r" in text else lines
            first += len(lines)
    # zlib.error: a corrupt deflate stream after a valid gzip header (not an OSError).
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputError(f"{name}: cannot read: {exc}") from None


def _too_long(name: str, line: int) -> None:
    raise InputError(
        f"{name}:{line}: line longer than {MAX_LINE_BYTES} bytes; is this the right file?"
    )


def _decode(name: str, first: int, data: bytes) -> str:
    nul = data.find(b"\x00")
    if nul >= 0:
        line = first + data.count(b"\n", 0, nul)
        raise InputError(f"{name}:{line}: binary data (NUL byte); expected text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first + data.count(b"\n", 0, exc.start)
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise InputError(
            f"{name}:{line}: not UTF-8 (byte {data[exc.start]:#04x} at column {column})"
        ) from None


def text_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """(line number, text without the newline), one line at a time."""
    for first, lines in text_chunks(stream, name):
        yield from enumerate(lines, start=first)


# --- plain id lists --------------------------------------------------------------------------


def read_id_list(path: str, fields: TargetFields, tags: tuple[Tag, ...]) -> Iterator[Item]:
    """One id per line; ``#`` starts a comment; blank lines are ignored."""
    name = display_name(path)
    with open_binary(path) as stream:
        for first, lines in text_chunks(stream, name):
            ids: list[str] = []
            numbers: list[int] = []
            for lineno, text in enumerate(lines, start=first):
                if "#" in text:
                    text = text.split("#", 1)[0]
                resource_id = text.strip()
                if not resource_id:
                    continue
                if len(resource_id.split(maxsplit=1)) > 1:
                    yield Problem(f"{name}:{lineno}", f"{resource_id!r}: one id per line expected")
                    continue
                ids.append(resource_id)
                numbers.append(lineno)
            if ids:
                yield IdBlock(name, fields, tags, ids, numbers)


# --- CSV manifests ---------------------------------------------------------------------------


def read_csv_manifest(path: str, defaults: TargetFields) -> Iterator[Item]:
    """A header row (``resource_id``, optional target columns, ``tag:KEY`` columns), then rows.

    An empty tag cell means "this row does not set that tag".
    """
    name = display_name(path)
    with open_binary(path) as stream:
        numbered = text_lines(stream, name)
        current = [1]  # the line the csv reader is on (a record may span lines)

        def lines() -> Iterator[str]:
            for lineno, text in numbered:
                current[0] = lineno
                yield text

        reader = csv.reader(lines(), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{name}: empty file; expected a CSV header row")
            columns = _csv_columns(name, [h.strip() for h in header])
            rows = _CsvRows(name, columns, defaults)
            for record in reader:
                line = current[0]
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(columns):
                    yield Problem(
                        f"{name}:{line}", f"{len(record)} cells; the header has {len(columns)}"
                    )
                    continue
                yield from rows.add(line, record)
            yield from rows.drain()
        except csv.Error as exc:
            raise InputError(f"{name}:{current[0]}: malformed CSV: {exc}") from None


def _csv_columns(name: str, header: list[str]) -> list[str]:
    if "resource_id" not in header:
        raise InputError(
            f"{name}:1: the CSV header has no resource_id column (found: {', '.join(header)})"
        )
    seen: set[str] = set()
    for column in header:
        if column in seen:
            raise InputError(f"{name}:1: column {column!r} appears twice in the header")
        seen.add(column)
        if column == "resource_id" or column in TARGET_COLUMNS:
            continue
        if not (column.startswith(TAG_PREFIX) and len(column) > len(TAG_PREFIX)):
            allowed = ", ".join(("resource_id", *TARGET_COLUMNS, "tag:KEY"))
            raise InputError(f"{name}:1: unknown column {column!r}; columns are {allowed}")
    return header


class _CsvRows:
    """Turns records into id blocks by column position.

    Rows with the same target and tag set are gathered into one :class:`IdBlock` (at most
    ``MAX_HELD_IDS`` ids are held at a time), so that a manifest costs about what an id list
    does per id. Each distinct target and tag set is built once and shared.
    """

    def __init__(self, name: str, columns: list[str], defaults: TargetFields) -> None:
        self.name = name
        self.width = len(columns)
        self.id_at = columns.index("resource_id")
        self.target_at = [columns.index(c) if c in columns else -1 for c in TARGET_COLUMNS]
        self.tags_at = [
            (i, c[len(TAG_PREFIX) :]) for i, c in enumerate(columns) if c.startswith(TAG_PREFIX)
        ]
        self.defaults = defaults
        self._fields: dict[tuple[str | None, ...], TargetFields] = {}
        self._tags: dict[tuple[Tag, ...], tuple[Tag, ...]] = {}
        self._pending: dict[tuple[TargetFields, tuple[Tag, ...]], IdBlock] = {}
        self._held = 0

    def add(self, line: int, record: list[str]) -> list[IdBlock]:
        """Add a record to its block; the blocks to hand on once too many ids are held."""
        values = tuple(record[i].strip() or None if i >= 0 else None for i in self.target_at)
        fields = self._fields.get(values)
        if fields is None:
            fields = self._fields[values] = TargetFields(*values).over(self.defaults)
        tags = tuple((key, record[i]) for i, key in self.tags_at if record[i] != "")
        tags = self._tags.setdefault(tags, tags)
        block = self._pending.get((fields, tags))
        if block is None:
            block = self._pending[(fields, tags)] = IdBlock(self.name, fields, tags, [], [])
        block.ids.append(record[self.id_at].strip())
        block.lines.append(line)
        self._held += 1
        return self.drain() if self._held >= MAX_HELD_IDS else []

    def drain(self) -> list[IdBlock]:
        blocks = list(self._pending.values())
        self._pending.clear()
        self._held = 0
        return blocks


# --- JSONL manifests -------------------------------------------------------------------------


def read_jsonl_manifest(path: str, defaults: TargetFields) -> Iterator[Item]:
    """One JSON object per line: ``{"resource_id": ..., "tags": {...}, "region": ...}``."""
    name = display_name(path)
    with open_binary(path) as stream:
        for lineno, text in text_lines(stream, name):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            # RecursionError: arrays or objects nested thousands deep on one line.
            except (ValueError, RecursionError) as exc:
                yield Problem(f"{name}:{lineno}", f"invalid JSON: {exc}")
                continue
            yield _jsonl_row(name, lineno, obj, defaults)


def _jsonl_row(name: str, line: int, obj: Any, defaults: TargetFields) -> Item:
    where = f"{name}:{line}"
    if not isinstance(obj, dict):
        return Problem(where, "expected a JSON object")
    unknown = set(obj) - {"resource_id", "tags", *TARGET_COLUMNS}
    if unknown:
        return Problem(where, f"unknown field(s): {', '.join(sorted(unknown))}")
    resource_id = obj.get("resource_id")
    if not isinstance(resource_id, str) or not resource_id.strip():
        return Problem(where, "resource_id is missing or not a string")
    tags = obj.get("tags", {})
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        return Problem(where, 'tags must be an object of strings, e.g. {"env": "prod"}')
    values = [obj.get(c) for c in TARGET_COLUMNS]
    if not all(v is None or isinstance(v, str) for v in values):
        return Problem(where, f"{', '.join(TARGET_COLUMNS)} must be strings")
    fields = TargetFields(*(v or None for v in values))
    return Row(name, line, resource_id.strip(), fields.over(defaults), tuple(tags.items()))


# --- campaign files --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """One target section of a campaign file: defaults, tags, and where its ids come from."""

    where: str
    fields: TargetFields
    tags: tuple[Tag, ...]
    ids: tuple[str, ...] = ()
    ids_file: str | None = None
    manifest: str | None = None


@dataclass(frozen=True, slots=True)
class CampaignFile:
    campaign_id: str | None
    sources: tuple[Source, ...]
    options: dict[str, Any] = field(default_factory=dict)


def load_campaign_file(path: str) -> CampaignFile:
    """A YAML, TOML or JSON campaign: ``id``, and ``targets`` each with tags and ids."""
    name = display_name(path)
    with open_binary(path) as stream:
        raw = b"".join(text.encode() + b"\n" for _, text in text_lines(stream, name))
    data = _parse_document(name, raw.decode())
    if not isinstance(data, dict):
        raise InputError(f"{name}: expected a mapping with a 'targets' list at the top")
    unknown = set(data) - {"id", "targets", "webhook"}
    if unknown:
        raise InputError(
            f"{name}: unknown top-level key(s): {', '.join(sorted(map(str, unknown)))}"
        )
    targets = data.get("targets")
    if not isinstance(targets, list) or not targets:
        raise InputError(f"{name}: 'targets' must be a non-empty list")
    base = Path(path).parent if path != "-" else Path.cwd()
    sources = tuple(_source(name, base, i, t) for i, t in enumerate(targets))
    campaign_id = data.get("id")
    if campaign_id is not None and not isinstance(campaign_id, str):
        raise InputError(f"{name}: 'id' must be a string")
    options = {"webhook": data["webhook"]} if "webhook" in data else {}
    return CampaignFile(campaign_id, sources, options)


def _parse_document(name: str, text: str) -> Any:
    suffix = name.removesuffix(".gz").rsplit(".", 1)[-1].lower()
    try:
        if suffix == "toml":
            return tomllib.loads(text)
        if suffix == "json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, ValueError, yaml.YAMLError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name}: not valid {suffix.upper()}: {detail}") from None
    except RecursionError:
        # All three parsers recurse per nesting level; a line of 5,000 '[' exhausts the stack.
        raise InputError(f"{name}: not valid {suffix.upper()}: nested too deeply") from None


_SOURCE_KEYS = {"tags", "ids", "ids_file", "manifest", *TARGET_COLUMNS}


def _source(name: str, base: Path, index: int, section: Any) -> Source:
    where = f"{name}: targets[{index}]"
    if not isinstance(section, dict):
        raise InputError(f"{where}: expected a mapping")
    unknown = set(section) - _SOURCE_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s): {', '.join(sorted(map(str, unknown)))}")
    values = {c: section.get(c) for c in TARGET_COLUMNS}
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}.{key}: expected a string")
    tags = section.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(k, str) for k in tags):
        raise InputError(f"{where}.tags: expected a mapping of tag key to value")
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in tags.values()):
        raise InputError(f"{where}.tags: tag values must be strings")
    ids = section.get("ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise InputError(f"{where}.ids: expected a list of strings")
    given = [k for k in ("ids", "ids_file", "manifest") if section.get(k)]
    if len(given) != 1:
        raise InputError(f"{where}: give exactly one of ids, ids_file or manifest")

    def relative(key: str) -> str | None:
        value = section.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InputError(f"{where}.{key}: expected a file path")
        return value if value == "-" else str(base / value)

    return Source(
        where,
        TargetFields(**values),
        tuple((k, str(v)) for k, v in tags.items()),
        tuple(ids),
        relative("ids_file"),
        relative("manifest"),
    )


def read_source(source: Source) -> Iterator[Item]:
    if source.ids:
        # Positions count from 1, like lines: "campaign.yaml: targets[0].ids:3".
        for i, resource_id in enumerate(source.ids, start=1):
            yield Row(f"{source.where}.ids", i, resource_id.strip(), source.fields, source.tags)
    elif source.ids_file:
        yield from read_id_list(source.ids_file, source.fields, source.tags)
    elif source.manifest:
        yield from with_default_tags(read_manifest(source.manifest, source.fields), source.tags)


def with_default_tags(items: Iterable[Item], tags: tuple[Tag, ...]) -> Iterator[Item]:
    """Tags for every manifest row; where a row sets the same tag, the row wins."""
    merged: dict[tuple[Tag, ...], tuple[Tag, ...]] = {}
    for item in items:
        if isinstance(item, Problem) or not tags:
            yield item
            continue
        own = item.tags
        both = merged.get(own)
        if both is None:
            both = merged[own] = tuple({**dict(tags), **dict(own)}.items())
        yield replace(item, tags=both)


def read_manifest(path: str, defaults: TargetFields) -> Iterator[Item]:
    """A manifest by its name: ``.jsonl``/``.ndjson`` is JSONL, anything else CSV."""
    stem = path.removesuffix(".gz").lower()
    if stem.endswith((".jsonl", ".ndjson")):
        return read_jsonl_manifest(path, defaults)
    return read_csv_manifest(path, defaults)
