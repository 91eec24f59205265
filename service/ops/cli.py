"""`python -m service <command>`: serve and maintain the service."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def cmd_serve(_: argparse.Namespace) -> int:
    """Validate the configuration, then replace this process with Gunicorn."""
    load_settings()
    config = ROOT / "deploy" / "gunicorn.conf.py"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    os.execv(str(gunicorn), [str(gunicorn), "-c", str(config)])
    return 0  # pragma: no cover


def cmd_init_db(_: argparse.Namespace) -> int:
    from service.bootstrap import prepare_storage
    from service.observability.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level)
    prepare_storage(settings)
    print(f"ready: {settings.checkpoints_db_path} and {settings.appointments_db_path}")
    return 0


def cmd_check_config(_: argparse.Namespace) -> int:
    settings = load_settings()
    for name, value in sorted(settings.model_dump().items()):
        shown = "***" if "key" in name and value else value
        print(f"{name.upper()}={shown}")
    return 0


def _db(args: argparse.Namespace):
    settings = load_settings()
    path = Path(args.db) if getattr(args, "db", None) else Path(settings.checkpoints_db_path)
    if not path.exists():
        raise CliError(f"no database at {path} (run `python -m service init-db` first)")
    return settings, path


class CliError(Exception):
    """A user-facing failure: printed without a traceback, exit code 1."""


def _progress_bar(description: str):
    from tqdm import tqdm

    bar = tqdm(desc=description, unit="page", disable=not sys.stderr.isatty())

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return bar, update


def cmd_backup(args: argparse.Namespace) -> int:
    from service.storage.sqlite.maintenance import backup

    settings, path = _db(args)
    bar, update = _progress_bar("backup")
    with bar:
        target = backup(path, settings, Path(args.output_dir), progress=update)
    print(f"backup written and verified (integrity_check ok): {target}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from service.storage.leader import service_is_running
    from service.storage.sqlite.maintainer import leader_path_for
    from service.storage.sqlite.maintenance import restore

    settings = load_settings()
    path = Path(args.db) if args.db else Path(settings.checkpoints_db_path)
    source = Path(args.backup_file)
    if not source.exists():
        raise CliError(f"backup file {source} does not exist")
    if service_is_running(leader_path_for(path)):
        raise CliError(
            f"the service is running on {path}; stop it first (restore replaces the file)"
        )
    aside = restore(source, path, settings)
    print(f"restored {source} to {path}; the previous database is kept at {aside}")
    return 0


def cmd_checkpoint_wal(args: argparse.Namespace) -> int:
    from service.storage.sqlite.maintenance import (
        checkpoint_wal,
        maintenance_connection,
        wal_bytes,
    )

    settings, path = _db(args)
    before = wal_bytes(path)
    with maintenance_connection(path, settings) as conn:
        busy, frames, copied = checkpoint_wal(conn, args.mode.upper())
    print(f"wal_checkpoint({args.mode.upper()}): busy={busy} frames={frames} copied={copied}")
    print(f"WAL {before} -> {wal_bytes(path)} bytes")
    return 1 if busy else 0


def cmd_vacuum(args: argparse.Namespace) -> int:
    from service.storage.sqlite.maintenance import vacuum

    settings, path = _db(args)
    before, after = vacuum(path, settings)
    print(f"VACUUM: {before} -> {after} bytes")
    return 0


def cmd_integrity_check(args: argparse.Namespace) -> int:
    from service.storage.sqlite.maintenance import integrity_check

    settings, path = _db(args)
    problems = integrity_check(path, settings)
    if problems:
        print("integrity_check FAILED:", *problems[:20], sep="\n  ")
        return 1
    print(f"integrity_check ok: {path}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    import json

    from service.storage.sqlite.maintenance import stats

    settings, path = _db(args)
    print(json.dumps(stats(path, settings).as_dict(), indent=2))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from service.storage.sqlite.maintenance import (
        delete_thread_rows,
        expired_threads,
        maintenance_connection,
        prune_thread_rows,
        threads_over_retention,
    )

    settings, path = _db(args)
    with maintenance_connection(path, settings) as conn:
        if args.older_than_days is not None:
            targets = expired_threads(conn, args.older_than_days, 10**9)
        elif args.thread_ids:
            targets = args.thread_ids
        else:
            targets = threads_over_retention(conn, args.keep_last, 10**9)
        removed = 0
        for thread_id in tqdm(targets, desc="prune", disable=not sys.stderr.isatty()):
            if args.strategy == "delete" or args.older_than_days is not None:
                delete_thread_rows(conn, thread_id)
                removed += 1
            else:
                removed += prune_thread_rows(conn, thread_id, args.keep_last)
    what = (
        "threads deleted"
        if args.strategy == "delete" or args.older_than_days
        else "checkpoints removed"
    )
    print(f"{removed} {what} ({len(targets)} threads examined)")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """SQLite -> PostgreSQL. Exit 0: copied and verified; 1: could not run; 3: mismatch."""
    import psycopg

    from service.ops.migrate import (
        MigrationError,
        migrate,
        parse_source,
        parse_target,
    )

    settings = load_settings()
    try:
        source, target = parse_source(args.source), parse_target(args.target)
        appointments = parse_source(args.appointments) if args.appointments else None
        report = migrate(
            source,
            target,
            settings,
            batch_size=args.batch_size,
            sample=args.sample,
            appointments=appointments,
        )
    except MigrationError as exc:
        raise CliError(str(exc)) from None
    except psycopg.OperationalError as exc:
        raise CliError(f"PostgreSQL: {exc}") from None
    print(
        f"{report.threads} threads: {report.copied} copied ({report.checkpoints} checkpoints, "
        f"{report.writes} writes), {report.skipped} already complete; "
        f"{report.appointments} appointments; {report.store_items} store items; "
        f"{report.assistants} assistants; "
        f"{report.sampled} states compared"
    )
    if report.problems:
        print("verification FAILED:", *report.problems[:20], sep="\n  ", file=sys.stderr)
    else:
        print("verified: thread, checkpoint and write counts match; sampled states are equal")
    return report.exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start Gunicorn with deploy/gunicorn.conf.py").set_defaults(
        func=cmd_serve
    )
    commands.add_parser("init-db", help="create or upgrade the database schemas").set_defaults(
        func=cmd_init_db
    )
    commands.add_parser("check-config", help="print the effective settings").set_defaults(
        func=cmd_check_config
    )
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", help="checkpoint database (default: CHECKPOINTS_DB_PATH)")
    backup = commands.add_parser(
        "backup", parents=[db], help="online, consistent, verified copy of the database"
    )
    backup.add_argument("--output-dir", default="data/backups")
    backup.set_defaults(func=cmd_backup)
    restore = commands.add_parser(
        "restore", parents=[db], help="replace the database with a backup (service stopped)"
    )
    restore.add_argument("backup_file")
    restore.set_defaults(func=cmd_restore)
    wal = commands.add_parser("checkpoint-wal", parents=[db], help="copy the WAL into the db")
    wal.add_argument(
        "--mode", default="truncate", choices=["passive", "full", "restart", "truncate"]
    )
    wal.set_defaults(func=cmd_checkpoint_wal)
    commands.add_parser("vacuum", parents=[db], help="rewrite the file compactly").set_defaults(
        func=cmd_vacuum
    )
    commands.add_parser(
        "integrity-check", parents=[db], help="PRAGMA integrity_check"
    ).set_defaults(func=cmd_integrity_check)
    commands.add_parser(
        "stats", parents=[db], help="threads, checkpoints, bytes, activity, WAL size"
    ).set_defaults(func=cmd_stats)
    prune = commands.add_parser("prune", parents=[db], help="apply retention or delete threads")
    prune.add_argument(
        "thread_ids", nargs="*", help="threads to prune (default: all over --keep-last)"
    )
    prune.add_argument("--strategy", choices=["keep_latest", "delete"], default="keep_latest")
    prune.add_argument("--keep-last", type=int, default=1)
    prune.add_argument("--older-than-days", type=float, help="delete threads idle this long")
    prune.set_defaults(func=cmd_prune)
    migrate = commands.add_parser(
        "migrate",
        help="copy every thread from SQLite to PostgreSQL, resumable, then verify "
        "(exit 0 ok, 1 error, 3 verification failed)",
    )
    migrate.add_argument("--from", dest="source", required=True, metavar="sqlite:PATH")
    migrate.add_argument("--to", dest="target", required=True, metavar="postgres:URL")
    migrate.add_argument("--appointments", metavar="sqlite:PATH", help="also copy bookings")
    migrate.add_argument("--batch-size", type=int, default=500, help="rows per INSERT batch")
    migrate.add_argument("--sample", type=int, default=20, help="thread states to compare")
    migrate.set_defaults(func=cmd_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
