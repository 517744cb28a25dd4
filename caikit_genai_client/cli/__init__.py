"""caikit-genai: serve a runtime, build its default models, and call its every task (docs/cli.md).

Calls go through `caikit_genai_client`: over HTTP (`--url`, default http://localhost:8080) or,
with `--grpc host:port`, over gRPC. Output is for people unless `--json` asks for the runtime's
answer as JSON. A failed call exits 1 with the server's code and message; bad usage exits 2.
"""

import argparse
import json
import os
import sys
from typing import List, Optional

from .. import TLS, Client, ClientError
from . import runtime_commands, task_commands, training_commands

DEFAULT_URL = "http://localhost:8080"


def connection_options(defaults: bool) -> argparse.ArgumentParser:
    """The flags every sub-command takes, before or after its name (after it, they override)."""
    parser = argparse.ArgumentParser(add_help=False, argument_default=None if defaults else argparse.SUPPRESS)
    group = parser.add_argument_group("connection")
    group.add_argument("--url", help=f"the runtime's HTTP URL (env CAIKIT_GENAI_URL; default {DEFAULT_URL})")
    group.add_argument("--grpc", metavar="HOST:PORT", help="call over gRPC instead of HTTP (env CAIKIT_GENAI_GRPC)")
    group.add_argument("--ca", metavar="FILE", help="TLS: the CA that signed the server's certificate")
    group.add_argument("--cert", metavar="FILE", help="mutual TLS: this client's certificate")
    group.add_argument("--key", metavar="FILE", help="mutual TLS: this client's key")
    group.add_argument("--tls", action="store_true", help="gRPC over TLS trusting the system's CAs (an https:// URL does that for HTTP)")
    group.add_argument("--server-name", help="gRPC TLS: check the server's certificate against this name")
    group.add_argument("--header", action="append", metavar="'NAME: VALUE'", help="an extra header / gRPC metadata (repeatable)")
    group.add_argument("--timeout", type=float, help="seconds per call (default 60)")
    group.add_argument("--json", action="store_true", help="print the runtime's answer as JSON")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caikit-genai", description=__doc__.splitlines()[0], parents=[connection_options(True)])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = connection_options(False)
    runtime_commands.add(commands, common)
    task_commands.add(commands, common)
    training_commands.add(commands, common)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, others = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    if args.command in runtime_commands.PASSTHROUGH_HELP:  # build, report: their own flags
        return runtime_commands.passthrough(args.command, others)
    if others:
        parser.error(f"unrecognized arguments: {' '.join(others)}")
    try:
        if getattr(args, "needs_client", True):
            with make_client(args) as client:
                return args.handler(args, client)
        return args.handler(args)
    except ClientError as error:
        if args.json:
            print(json.dumps({"error": {"code": error.code, "message": error.message, "wire": error.wire}}), file=sys.stderr)
        else:
            print(f"error ({error.wire}): {error.code}: {error.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def make_client(args) -> Client:
    grpc_target = args.grpc or os.environ.get("CAIKIT_GENAI_GRPC")
    url = args.url or os.environ.get("CAIKIT_GENAI_URL") or DEFAULT_URL
    tls = None
    if args.ca or args.cert or args.key or args.tls or args.server_name:
        tls = TLS(ca=args.ca, cert=args.cert, key=args.key, server_name=args.server_name)
    headers = {}
    for header in args.header or []:
        name, colon, value = header.partition(":")
        if not colon:
            raise ValueError(f"--header {header!r}: write it as 'NAME: VALUE'")
        headers[name.strip()] = value.strip()
    timeout = args.timeout if args.timeout is not None else 60.0
    if grpc_target:
        return Client(grpc=grpc_target, tls=tls, timeout=timeout, metadata=headers)
    return Client(http=url, tls=tls, timeout=timeout, metadata=headers)
