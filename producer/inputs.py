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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import yaml

from bulktag.errors import UserError
from producer.campaign import Row, TargetFields
from providers.rules import Tag

# Longest line accepted: a CSV row with 20 tags of 128+128 characters is about 5 KiB.
MAX_LINE_BYTES = 16 * 1024
TARGET_COLUMNS = ("provider", "profile", "region", "project", "resource_type")
TAG_PREFIX = "tag:"


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


Item = Row | Problem


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


def text_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, str]]:
    """(line number, text without the newline), refusing binary, non-UTF-8, huge lines."""
    lineno = 0
    try:
        while True:
            line = stream.readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            lineno += 1
            if len(line) > MAX_LINE_BYTES:
                raise InputError(
                    f"{name}:{lineno}: line longer than {MAX_LINE_BYTES} bytes; "
                    "is this the right file?"
                )
            if b"\x00" in line:
                raise InputError(f"{name}:{lineno}: binary data (NUL byte); expected text")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{name}:{lineno}: not UTF-8 (byte {line[exc.start]:#04x} at column "
                    f"{exc.start + 1})"
                ) from None
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield lineno, text.rstrip("\r\n")
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputError(f"{name}: cannot read: {exc}") from None


# --- plain id lists --------------------------------------------------------------------------


def read_id_list(path: str, fields: TargetFields, tags: tuple[Tag, ...]) -> Iterator[Item]:
    """One id per line; ``#`` starts a comment; blank lines are ignored."""
    name = display_name(path)
    with open_binary(path) as stream:
        for lineno, text in text_lines(stream, name):
            resource_id = text.split("#", 1)[0].strip()
            if not resource_id:
                continue
            if len(resource_id.split(maxsplit=1)) > 1:
                yield Problem(f"{name}:{lineno}", f"{resource_id!r}: one id per line expected")
                continue
            yield Row(f"{name}:{lineno}", resource_id, fields, tags)


# --- CSV manifests ---------------------------------------------------------------------------


def read_csv_manifest(path: str, defaults: TargetFields) -> Iterator[Item]:
    """A header row (``resource_id``, optional target columns, ``tag:KEY`` columns), then rows.

    An empty tag cell means "this row does not set that tag".
    """
    name = display_name(path)
    with open_binary(path) as stream:
        numbered = text_lines(stream, name)
        line_of_record: list[int] = []

        def lines() -> Iterator[str]:
            for lineno, text in numbered:
                line_of_record.append(lineno)
                yield text

        reader = csv.reader(lines(), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{name}: empty file; expected a CSV header row")
            columns = _csv_columns(name, [h.strip() for h in header])
            for record in reader:
                where = f"{name}:{line_of_record[-1]}"
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(columns):
                    yield Problem(where, f"{len(record)} cells; the header has {len(columns)}")
                    continue
                yield _csv_row(where, columns, record, defaults)
        except csv.Error as exc:
            line = line_of_record[-1] if line_of_record else 1
            raise InputError(f"{name}:{line}: malformed CSV: {exc}") from None


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


def _csv_row(where: str, columns: list[str], record: list[str], defaults: TargetFields) -> Row:
    cells = dict(zip(columns, record, strict=True))
    fields = TargetFields(*(cells.get(c, "").strip() or None for c in TARGET_COLUMNS))
    tags = tuple(
        (column[len(TAG_PREFIX) :], value)
        for column, value in cells.items()
        if column.startswith(TAG_PREFIX) and value != ""
    )
    return Row(where, cells["resource_id"].strip(), fields.over(defaults), tags)


# --- JSONL manifests -------------------------------------------------------------------------


def read_jsonl_manifest(path: str, defaults: TargetFields) -> Iterator[Item]:
    """One JSON object per line: ``{"resource_id": ..., "tags": {...}, "region": ...}``."""
    name = display_name(path)
    with open_binary(path) as stream:
        for lineno, text in text_lines(stream, name):
            where = f"{name}:{lineno}"
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except ValueError as exc:
                yield Problem(where, f"invalid JSON: {exc}")
                continue
            yield _jsonl_row(where, obj, defaults)


def _jsonl_row(where: str, obj: Any, defaults: TargetFields) -> Item:
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
    return Row(where, resource_id.strip(), fields.over(defaults), tuple(tags.items()))


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
        raise InputError(f"{name}: unknown top-level key(s): {', '.join(sorted(unknown))}")
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


_SOURCE_KEYS = {"tags", "ids", "ids_file", "manifest", *TARGET_COLUMNS}


def _source(name: str, base: Path, index: int, section: Any) -> Source:
    where = f"{name}: targets[{index}]"
    if not isinstance(section, dict):
        raise InputError(f"{where}: expected a mapping")
    unknown = set(section) - _SOURCE_KEYS
    if unknown:
        raise InputError(f"{where}: unknown key(s): {', '.join(sorted(unknown))}")
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
        for i, resource_id in enumerate(source.ids):
            yield Row(f"{source.where}.ids[{i}]", resource_id.strip(), source.fields, source.tags)
    elif source.ids_file:
        yield from read_id_list(source.ids_file, source.fields, source.tags)
    elif source.manifest:
        for item in read_manifest(source.manifest, source.fields):
            yield with_default_tags(item, source.tags)


def with_default_tags(item: Item, tags: tuple[Tag, ...]) -> Item:
    """Tags for every manifest row; where a row sets the same tag, the row wins."""
    if isinstance(item, Row) and tags:
        return replace(item, tags=tuple({**dict(tags), **dict(item.tags)}.items()))
    return item


def read_manifest(path: str, defaults: TargetFields) -> Iterator[Item]:
    """A manifest by its name: ``.jsonl``/``.ndjson`` is JSONL, anything else CSV."""
    stem = path.removesuffix(".gz").lower()
    if stem.endswith((".jsonl", ".ndjson")):
        return read_jsonl_manifest(path, defaults)
    return read_csv_manifest(path, defaults)
