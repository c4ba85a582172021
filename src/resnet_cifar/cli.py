"""The `resnet-cifar` command line: one subcommand per module in `resnet_cifar.commands`.

Each command module exposes HELP (one line), add_arguments(parser) and
run(args) -> exit code. A UserError becomes one line on stderr and exit code 2,
so a typo never shows a traceback; Ctrl-C exits with 130.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from resnet_cifar.errors import UserError

# Listed in the order `resnet-cifar --help` shows them.
COMMANDS = ("models", "train", "evaluate", "predict", "export", "compare")


class Parser(argparse.ArgumentParser):
    """An argument error is one line naming the command and where its help is, not the whole usage text."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: error: {message.rstrip('.')}; see {self.prog} --help.\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="resnet-cifar",
        description="Define, train, evaluate and use ResNets on CIFAR-10/100 and folders of images.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"resnet_cifar.commands.{name}")
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"resnet-cifar {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`resnet-cifar models | head`): stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"resnet-cifar {args.command}: interrupted", file=sys.stderr)
        return 130
