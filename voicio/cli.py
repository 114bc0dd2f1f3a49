"""The `voicio` command: `voicio run` and `voicio migrate`."""

from __future__ import annotations

import argparse
import logging
import sys

from voicio import service
from voicio.config import ConfigError, load_settings
from voicio.logs import configure_logging

logger = logging.getLogger("voicio")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen command."""
    parser = argparse.ArgumentParser(
        prog="voicio", description="Voicio: voice notes in, summaries out."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot (long polling)")
    commands.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(need_secrets=args.command == "run")
    except ConfigError as exc:
        print(f"voicio: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_level,
        secrets=(
            settings.telegram_bot_token,
            settings.gemini_api_key,
            settings.webhook_secret or "",
        ),
    )
    if args.command == "migrate":
        applied = service.migrate(settings)
        logger.info("Migrations applied: %s", ", ".join(applied) or "none pending")
        return 0
    service.run(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
