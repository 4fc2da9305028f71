"""`python -m bot.crm.importer customers.csv orders.csv …`: backfill the CRM from a shop's files.

Each row is one record of the inbound API (bot/api/schemas.py), checked by the same models and
written by the same upserts (bot/crm/ingest.py), so a row means what the same JSON sent to /api/v1
means: the same file twice changes nothing, an older row never rolls a newer state back. A row that
cannot be written is set aside with its line and reason in a rejects file; the others are written
in chunks, each committed with a checkpoint, so an interrupted run started again continues after
the last chunk written. `--dry-run` checks and writes everything in one transaction and rolls it
back: it reports exactly what a real run would do, references between the files included.

CSV files are named for what they hold (customers, products, orders, subscriptions, refunds, e.g.
`orders-2024.csv`) and read in that order, whatever the order on the command line. A JSON-lines file
(`.jsonl`) holds either records of the kind its name says, or batch items
(`{"type": "order", "data": {…}}`) of any kind, read in their own order after the CSV files.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tqdm import tqdm

from bot.api.problems import field_errors
from bot.api.schemas import RESOURCES, BatchItemIn
from bot.crm.ingest import Refused, Upserted, upsert_many

KINDS = ("customer", "product", "order", "subscription", "refund")  # the order files are read in
PLURALS = {kind: f"{kind}s" for kind in KINDS}
BATCH_SIZE = 500  # rows per transaction: big enough to be fast, small enough to lose little
CONSENT_COLUMNS = {"marketing_consent": "granted", "marketing_consent_source": "source"}
CONSENT_COLUMNS["marketing_consent_at"] = "at"
ADDRESS_COLUMNS = {f"address_{part}": part for part in ("line1", "line2", "postal_code", "city", "country")}
NESTED = {"marketing_consent": CONSENT_COLUMNS, "address": ADDRESS_COLUMNS}  # a customer's, as columns
LINE_COLUMNS = {"line_product_external_id": "product_external_id", "line_quantity": "quantity"}
LINE_COLUMNS["line_unit_price"] = "unit_price"
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
BOOLEAN_FIELDS = {"is_plan", "active", "granted"}
INTEGER_FIELDS = {"quantity"}


class FileRefused(Exception):
    """A file that cannot be imported at all (its name, its columns, its encoding)."""


@dataclass(frozen=True)
class Row:
    """One record read from a file: its lines, its kind, and its fields or why it cannot be read."""

    first_line: int
    kind: str
    payload: dict[str, Any] | None
    problem: tuple[str, str] | None = None  # (field, reason)
    last_line: int = 0


@dataclass(frozen=True)
class Rejected:
    file: str
    line: int
    kind: str
    external_id: str
    field: str
    reason: str


@dataclass
class Tally:
    """What an import did, per file and outcome, and the rows it set aside."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    stopped: bool = False  # the deadline came before the end of the files

    def count(self, file: str, outcome: str) -> None:
        self.counts.setdefault(file, Counter())[outcome] += 1


@dataclass(frozen=True)
class Options:
    batch_size: int = BATCH_SIZE
    dry_run: bool = False
    restart: bool = False
    state_dir: Path | None = None  # where checkpoints are kept; None: no resuming
    progress: bool = True
    deadline: float | None = None  # time.monotonic() after which no chunk is started (a bench's budget)


# Reading ------------------------------------------------------------------------------------------


def kind_of(path: Path) -> str | None:
    """The kind of record a file's name says it holds (`orders-2024.csv` holds orders)."""
    stem = path.name.lower()
    return next((kind for kind in KINDS if stem.startswith(PLURALS[kind]) or stem.startswith(kind)), None)


def reading_order(paths: Iterable[Path]) -> list[Path]:
    """Files in the order their records depend on each other; mixed JSON lines last, as given."""

    def rank(path: Path) -> int:
        kind = kind_of(path)
        return KINDS.index(kind) if kind is not None else len(KINDS)

    return sorted(paths, key=rank)


def read_rows(path: Path) -> Iterator[Row]:
    kind = kind_of(path)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        try:
            if path.suffix.lower() in (".jsonl", ".ndjson"):
                yield from _json_rows(handle, kind)
            elif kind is None:
                raise FileRefused(f"{path.name}: name a CSV file for what it holds, e.g. orders.csv")
            else:
                yield from _csv_rows(handle, kind, path.name)
        except UnicodeDecodeError:
            raise FileRefused(f"{path.name}: is not UTF-8 text; export it as UTF-8 CSV") from None


def _json_rows(handle: TextIO, kind: str | None) -> Iterator[Row]:
    for number, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            yield Row(number, kind or "", None, ("", f"is not JSON: {error.msg}"))
            continue
        if kind is not None:
            yield Row(number, kind, value if isinstance(value, dict) else None, _not_object(value))
            continue
        try:
            item = BatchItemIn.model_validate(value)
        except ValidationError as error:
            first = field_errors(error)[0]
            yield Row(
                number, str(value.get("type", "")) if isinstance(value, dict) else "", None, _pair(first)
            )
            continue
        yield Row(number, item.type, item.data)


def _not_object(value: Any) -> tuple[str, str] | None:
    return None if isinstance(value, dict) else ("", "is not a JSON object")


def _csv_rows(handle: TextIO, kind: str, name: str) -> Iterator[Row]:
    reader = csv.DictReader(handle)
    columns = [column.strip() for column in reader.fieldnames or ()]
    check_columns(kind, columns, name)
    reader.fieldnames = columns
    rows: list[tuple[int, dict[str, str]]] = []  # a run of an order's rows; one row otherwise
    for cells in reader:
        line = reader.line_num
        if None in cells:
            yield Row(line, kind, None, ("", "has more cells than the header has columns"), line)
            continue
        filled = {name: value.strip() for name, value in cells.items() if name and value and value.strip()}
        if kind != "order":
            yield Row(line, kind, _payload(filled), last_line=line)
        elif rows and not _same_order(rows[0][1], filled):
            yield _order(rows)
            rows = [(line, filled)]
        else:
            rows.append((line, filled))
    if rows:
        yield _order(rows)


def columns_of(kind: str) -> set[str]:
    """The CSV columns a kind takes: its fields, nested ones flattened."""
    names = set(RESOURCES[kind].model_fields)
    if kind == "customer":
        for nested, columns in NESTED.items():
            if nested in names:
                names = (names - {nested}) | set(columns)
    if kind == "order":
        names = (names - {"lines"}) | set(LINE_COLUMNS)
    return names


def check_columns(kind: str, columns: Sequence[str], name: str) -> None:
    """Refuse a file with a column nobody reads: its data would be silently lost."""
    unknown = [column for column in columns if column not in columns_of(kind)]
    if unknown:
        verb = "is not a column" if len(unknown) == 1 else "are not columns"
        raise FileRefused(
            f"{name}: {', '.join(map(repr, unknown))} {verb} of {PLURALS[kind]};"
            f" the columns are {', '.join(sorted(columns_of(kind)))}"
        )
    if "external_id" not in columns:
        raise FileRefused(f"{name}: has no external_id column")


def _payload(cells: dict[str, str]) -> dict[str, Any]:
    """A CSV row as the JSON the API takes: consent and address nested, yes/no and whole numbers typed."""
    payload: dict[str, Any] = {}
    for name, value in cells.items():
        nested = next((key for key, columns in NESTED.items() if name in columns), None)
        if nested is not None:
            part = NESTED[nested][name]
            payload.setdefault(nested, {})[part] = _typed(part, value)
        elif name not in LINE_COLUMNS:
            payload[name] = _typed(name, value)
    return payload


def _typed(name: str, value: str) -> Any:
    """A cell as the type its field takes; what is not that type stays text, for the model to refuse."""
    if name in BOOLEAN_FIELDS:
        return BOOLEANS.get(value.lower(), value)
    if name in INTEGER_FIELDS and value.isdigit():
        return int(value)
    return value


def _same_order(first: dict[str, str], cells: dict[str, str]) -> bool:
    """Whether a row continues an order: the rows of one order, each with a line item, share its
    external_id, status and occurred_at (the way shops export an order with its lines)."""
    keys = ("external_id", "status", "occurred_at")
    return all(first.get(key) == cells.get(key) for key in keys) and "external_id" in cells


def _order(group: list[tuple[int, dict[str, str]]]) -> Row:
    first_line, first = group[0]
    last_line = group[-1][0]
    payload = _payload(first)
    for line, cells in group[1:]:
        for name, value in cells.items():
            if name not in LINE_COLUMNS and first.get(name) != value:
                return Row(line, "order", None, (name, "differs between the rows of one order"), last_line)
    lines = [_line(cells) for _, cells in group if any(name in LINE_COLUMNS for name in cells)]
    if lines:
        payload["lines"] = lines
    return Row(first_line, "order", payload, last_line=last_line)


def _line(cells: dict[str, str]) -> dict[str, Any]:
    return {
        LINE_COLUMNS[name]: _typed(LINE_COLUMNS[name], v) for name, v in cells.items() if name in LINE_COLUMNS
    }


def _pair(error: Any) -> tuple[str, str]:
    return error.field, error.reason


# Checking and writing -------------------------------------------------------------------------------


def checked(row: Row) -> Any:
    """The row's record as the API's model, or the (field, reason) it is refused for."""
    if row.problem is not None or row.payload is None:
        return row.problem or ("", "is empty")
    try:
        return RESOURCES[row.kind].model_validate(row.payload)
    except ValidationError as error:
        return _pair(field_errors(error)[0]) if len(error.errors()) == 1 else _all_fields(error)


def _all_fields(error: ValidationError) -> tuple[str, str]:
    errors = field_errors(error)
    return errors[0].field, "; ".join(f"{e.field} {e.reason}" if e.field else e.reason for e in errors)


def csv_field(row: Row, name: str) -> tuple[int, str]:
    """An API field's name as the file's column, and the line it is on."""
    if name.startswith("lines["):
        index, _, rest = name[len("lines[") :].partition("].")
        if index.isdigit():
            return row.first_line + int(index), f"line_{rest}"
    nested, _, part = name.partition(".")
    if nested in NESTED:
        column = {v: k for k, v in NESTED[nested].items()}.get(part)
        return row.first_line, column or name
    return row.first_line, name


def write_chunk(session: Session, rows: Sequence[Row], name: str, actor: str, tally: Tally) -> None:
    """Check and upsert a chunk of rows in the session's transaction; count and set aside."""
    records = [checked(row) for row in rows]
    items = [(row.kind, record) for row, record in zip(rows, records, strict=True)]
    done = upsert_many(session=session, items=items, actor=actor, records=False)
    for row, result in zip(rows, done, strict=True):
        if isinstance(result, Upserted):
            tally.count(name, result.outcome.value)
            continue
        if isinstance(result, Refused):
            problem = (result.field, result.reason)
        elif isinstance(result, IntegrityError):
            problem = ("", "was written by someone else at the same time; run the import again")
        else:
            problem = result
        _reject(tally, name, row, problem)


def _reject(tally: Tally, name: str, row: Row, problem: tuple[str, str]) -> None:
    line, column = csv_field(row, problem[0])
    external_id = str((row.payload or {}).get("external_id", ""))[:64]
    tally.rejected.append(Rejected(name, line, row.kind, external_id, column, problem[1]))
    tally.count(name, "rejected")


def preflight(paths: Sequence[Path]) -> None:
    """Refuse, before anything is written, a file whose name or columns cannot be read."""
    for path in paths:
        kind = kind_of(path)
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            continue
        if kind is None:
            raise FileRefused(f"{path.name}: name a CSV file for what it holds, e.g. orders.csv")
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                header = next(csv.reader(handle), [])
        except UnicodeDecodeError:
            raise FileRefused(f"{path.name}: is not UTF-8 text; export it as UTF-8 CSV") from None
        check_columns(kind, [column.strip() for column in header], path.name)


def import_files(engine: Engine, paths: Sequence[Path], options: Options) -> Tally:
    """Import the files in dependency order; a dry run writes nothing."""
    preflight(paths)
    tally, started = Tally(), time.monotonic()
    files = reading_order(paths)
    with Session(engine, expire_on_commit=False, autoflush=True) as session:
        for path in files:
            _import_file(session, path, options, tally)
        if options.dry_run:
            session.rollback()
    tally.seconds = time.monotonic() - started
    return tally


def _import_file(session: Session, path: Path, options: Options, tally: Tally) -> None:
    name, actor = path.name, f"import:{path.name}"[:60]
    checkpoint = Checkpoint(options.state_dir, path) if options.state_dir and not options.dry_run else None
    skip = 0 if checkpoint is None or options.restart else checkpoint.done()
    if skip:
        print(f"{name}: resuming after {skip:,} records written before", file=sys.stderr)
    tally.counts.setdefault(name, Counter())
    bar = tqdm(
        total=_line_count(path), unit="row", desc=name, file=sys.stderr, disable=not options.progress or None
    )
    chunk: list[Row] = []
    records = 0
    with bar:
        for row in read_rows(path):
            if options.deadline is not None and not chunk and time.monotonic() > options.deadline:
                tally.stopped = True
                break
            records += 1
            if records <= skip:
                bar.update(row.last_line - row.first_line + 1)
                continue
            chunk.append(row)
            if len(chunk) >= options.batch_size:
                _commit_chunk(session, chunk, name, actor, tally, options, checkpoint, records, bar)
                chunk = []
        if chunk:
            _commit_chunk(session, chunk, name, actor, tally, options, checkpoint, records, bar)
    if checkpoint is not None:
        checkpoint.finish()  # a finished file starts from the top next time (and changes nothing)


def _commit_chunk(
    session: Session,
    chunk: list[Row],
    name: str,
    actor: str,
    tally: Tally,
    options: Options,
    checkpoint: Checkpoint | None,
    records: int,
    bar: tqdm[Any],
) -> None:
    write_chunk(session, chunk, name, actor, tally)
    if not options.dry_run:
        session.commit()
        if checkpoint is not None:
            checkpoint.save(records)
    session.expunge_all()  # the chunk's rows are written (or in the dry run's transaction)
    tally.rows += len(chunk)
    bar.update(sum(row.last_line - row.first_line + 1 for row in chunk))


def _line_count(path: Path) -> int:
    with path.open("rb") as handle:
        lines = sum(1 for _ in handle)
    return max(0, lines - (0 if path.suffix.lower() in (".jsonl", ".ndjson") else 1))


class Checkpoint:
    """How many records of a file are committed, kept by the file's content hash: an edited file
    starts over (re-writing a row changes nothing, so starting over is always safe)."""

    def __init__(self, directory: Path, path: Path) -> None:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        self.path = directory / f"{digest.hexdigest()[:32]}.json"
        self.file = path.name

    def done(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["records"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def save(self, records: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"file": self.file, "records": records, "at": _now()}))
        temporary.replace(self.path)  # a crash leaves the old checkpoint or the new, never half of one

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)


def write_rejects(rejected: Sequence[Rejected], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "line", "type", "external_id", "field", "reason"])
        for one in rejected:
            writer.writerow([one.file, one.line, one.kind, one.external_id, one.field, one.reason])


def summary(tally: Tally, *, dry_run: bool) -> str:
    lines = []
    for name, counts in tally.counts.items():
        parts = ", ".join(f"{outcome} {n:,}" for outcome, n in sorted(counts.items())) or "no rows"
        lines.append(f"{name}: {parts}")
    rate = tally.rows / tally.seconds if tally.seconds > 0 else 0.0
    lines.append(f"{tally.rows:,} records in {tally.seconds:.1f} s ({rate:,.0f}/s)")
    if dry_run:
        lines.append("dry run: nothing was written")
    return "\n".join(lines)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    from bot.bootstrap import bootstrap
    from bot.crm.db import make_engine
    from bot.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].strip("`: "))
    parser.add_argument("files", nargs="+", type=Path, help="customers.csv products.csv orders.csv …")
    parser.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    parser.add_argument("--rejects", type=Path, help="where rejected rows go (default var/import/)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="rows per transaction")
    parser.add_argument("--restart", action="store_true", help="ignore the checkpoint of an interrupted run")
    parser.add_argument("--database-url", help="default: DATABASE_URL from the environment or .env")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)}")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size is 1 to 1000")
    url = args.database_url or bootstrap(command=True).database_url
    var = PROJECT_ROOT / "var" / "import"
    options = Options(
        batch_size=args.batch_size,
        dry_run=args.dry_run,
        restart=args.restart,
        state_dir=var / "checkpoints",
        progress=not args.no_progress,
    )
    engine = make_engine(url)
    try:
        tally = import_files(engine, args.files, options)
    except FileRefused as refused:
        print(f"not imported: {refused}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(summary(tally, dry_run=args.dry_run))
    if tally.rejected:
        path = args.rejects or var / f"rejected-{_now().replace(':', '')}.csv"
        write_rejects(tally.rejected, path)
        print(f"{len(tally.rejected):,} rows rejected, each with its line and reason: {path}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
