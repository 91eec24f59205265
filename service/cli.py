"""`python -m service <command>`: serve and maintain the service."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def cmd_serve(_: argparse.Namespace) -> int:
    """Validate the configuration, then replace this process with Gunicorn."""
    load_settings()
    config = ROOT / "deploy" / "gunicorn.conf.py"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    os.execv(str(gunicorn), [str(gunicorn), "-c", str(config)])
    return 0  # pragma: no cover


def cmd_init_db(_: argparse.Namespace) -> int:
    from service.logging_setup import configure_logging
    from service.persistence import prepare_storage

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    raise SystemExit(main())
