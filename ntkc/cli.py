"""Command-line interface: ``ntkc demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ntkc", description="Finite-width NTK compiler for JAX.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="NTK of a small CNN with every method, timed side by side.")
    demo.add_argument("--batch", type=int, default=8, help="examples per side (default 8)")
    demo.add_argument("--repeats", type=int, default=5, help="timed runs per method (default 5)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ntkc.demo import run_demo

        return run_demo(batch=args.batch, repeats=args.repeats)
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
