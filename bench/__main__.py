"""`python -m bench` (make bench): measure, print one table, write the JSON under var/bench/."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.report import render, write_json
from bench.run import BenchConfig, run
from bot.bootstrap import bootstrap


def parse_args(argv: list[str] | None) -> BenchConfig:
    defaults = BenchConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=defaults.population, help="demo customers")
    parser.add_argument(
        "--levels", default=",".join(map(str, defaults.levels)), help="customers at once, e.g. 1,10,50"
    )
    parser.add_argument("--conversations-per-customer", type=int, default=defaults.conversations_per_customer)
    parser.add_argument("--min-conversations", type=int, default=defaults.min_conversations)
    parser.add_argument("--fanout-workers", type=int, default=defaults.fanout_workers)
    parser.add_argument("--direct-triggers", type=int, default=defaults.direct_triggers)
    parser.add_argument("--no-heldout", action="store_true", help="skip `rasa test nlu` (about 2 minutes)")
    parser.add_argument(
        "--backfill-orders", type=int, default=defaults.backfill_orders, help="orders to import (0: skip)"
    )
    parser.add_argument(
        "--refresh-customers",
        type=int,
        default=defaults.refresh_customers,
        help="customers in the nightly refresh's CRM (0: skip)",
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=defaults.budget_minutes,
        help="the campaign stops starting sends when the run would take longer",
    )
    parser.add_argument(
        "--no-database-setup", action="store_true", help="skip timing `make db` (the fresh-clone figure)"
    )
    parser.add_argument("--model", type=Path, help="model archive (default: the current one)")
    parser.add_argument("--out", type=Path, default=defaults.var_dir, help="where the JSON goes")
    args = parser.parse_args(argv)
    return BenchConfig(
        population=args.population,
        levels=tuple(int(level) for level in args.levels.split(",")),
        conversations_per_customer=args.conversations_per_customer,
        min_conversations=args.min_conversations,
        fanout_workers=args.fanout_workers,
        direct_triggers=args.direct_triggers,
        heldout=not args.no_heldout,
        backfill_orders=args.backfill_orders,
        refresh_customers=args.refresh_customers,
        database_setup=not args.no_database_setup,
        budget_minutes=args.budget_minutes,
        var_dir=args.out.resolve(),
        model=args.model.resolve() if args.model else None,
    )


def main(argv: list[str] | None = None) -> int:
    bootstrap(command=True)  # .env holds RASA_TOKEN etc.; bad settings stop the run before it starts
    config = parse_args(argv)
    result = run(config)
    print(render(result))
    path = write_json(result, config.var_dir)
    print(f"\nwritten to {path}")
    minutes = result["machine"]["seconds"] / 60
    if minutes > config.budget_minutes:
        print(f"over the {config.budget_minutes:g}-minute budget: {minutes:.1f} min", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
