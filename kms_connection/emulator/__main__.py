"""Command line: ``python -m kms_connection.emulator [options]``.

Prints the endpoint URL (e.g. ``http://127.0.0.1:4599``) as the first line on stdout once it accepts requests,
logs one line per request to stderr, and exits 0 on SIGINT or SIGTERM. Exit status 2: a bad option, seed or
state file (the message says which and why); 1: the address cannot be bound.

Unlike the in-process ``Emulator``, the defaults here are KMS's own: connects take 20 s, disconnects 5 s,
and each custom key store operation is throttled at 5 requests per second per account and Region (key operations at
KMS's own quotas). STS answers on the same endpoint; ``--account AKID=ACCOUNT`` gives an access key id its account
(others act in 000000000000).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .emulator import Emulator
from .errors import EmulatorConfigError, EmulatorStateError
from .keys import DEFAULT_KEY_LIMIT
from .store import DEFAULT_STORE_LIMIT

PROGRAM = "kms-emulator"


def _log(line: str) -> None:
    print(f"{PROGRAM}: {line}", file=sys.stderr, flush=True)


def _outcome(text: str) -> tuple[str, str]:
    key, equals, outcome = text.partition("=")
    if not equals or not key or not outcome:
        raise argparse.ArgumentTypeError(f"expected [REGION/]STORE_ID=succeed|hang|fail:CODE, got {text!r}")
    return key, outcome


def _store_drill(text: str) -> tuple[str, str]:
    key, equals, error = text.partition("=")
    if not equals or not key or not error:
        raise argparse.ArgumentTypeError(f"expected [REGION/]STORE_ID=ERROR, got {text!r}")
    return key, error


def _next_drill(text: str) -> tuple[str, str, int]:
    operation, equals, rest = text.partition("=")
    error, colon, count_text = rest.partition(":")
    if not equals or not operation or not error or (colon and not count_text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected OPERATION=ERROR or OPERATION=ERROR:COUNT, got {text!r}")
    return operation, error, int(count_text) if colon else 1


def _account(text: str) -> tuple[str, str]:
    key, equals, account = text.partition("=")
    if not equals or not key or not account:
        raise argparse.ArgumentTypeError(f"expected ACCESS_KEY_ID=ACCOUNT_ID, got {text!r}")
    return key, account


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="python -m kms_connection.emulator",
        description="A local, wire-compatible AWS KMS endpoint for custom key stores.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=4599, help="port to bind; 0 picks a free one (default 4599)")
    parser.add_argument("--state-file", help="JSON file that keeps stores across restarts")
    parser.add_argument("--seed", help="JSON file of stores with fixed ids to create if missing")
    parser.add_argument("--connect-seconds", type=_non_negative, default=20.0, help="connect duration (20)")
    parser.add_argument("--disconnect-seconds", type=_non_negative, default=5.0, help="disconnect duration (5)")
    parser.add_argument("--store-limit", type=int, default=DEFAULT_STORE_LIMIT, help="stores per Region (10)")
    parser.add_argument(
        "--key-limit", type=int, default=DEFAULT_KEY_LIMIT, help="KMS keys per account and Region (100000)"
    )
    parser.add_argument(
        "--throttle-rps",
        type=_non_negative,
        default=5.0,
        help="requests/s per custom key store operation per account and Region, key operations at KMS's own quotas; "
        "0: off (5)",
    )
    parser.add_argument("--fail-next", type=int, default=0, help="answer the next N requests KMSInternalException")
    parser.add_argument("--failure-rate", type=_non_negative, default=0.0, help="fraction of requests that fail")
    parser.add_argument("--failure-seed", type=int, default=0, help="seed of the failure-rate draws (0)")
    parser.add_argument("--consistency-lag", type=_non_negative, default=0.0, help="Describe lags by S seconds")
    parser.add_argument(
        "--connect-outcome",
        type=_outcome,
        action="extend",
        nargs="+",
        default=[],
        metavar="[REGION/]STORE_ID=OUTCOME",
        help="outcome of connects of a store: succeed, hang or fail:CODE (several, or repeat the option)",
    )
    parser.add_argument("--default-connect-outcome", default="succeed", help="outcome for other stores (succeed)")
    parser.add_argument(
        "--drill-store",
        type=_store_drill,
        action="extend",
        nargs="+",
        default=[],
        metavar="[REGION/]STORE_ID=ERROR",
        help="the store's cluster or proxy fails: its Connects and Updates answer ERROR (e.g. "
        "CloudHsmClusterNotActiveException) once they pass KMS's rules",
    )
    parser.add_argument(
        "--drill-next",
        type=_next_drill,
        action="extend",
        nargs="+",
        default=[],
        metavar="OPERATION=ERROR[:COUNT]",
        help="the next COUNT (1) requests of OPERATION for a store of ERROR's type answer ERROR (e.g. "
        "CreateCustomKeyStore=XksProxyUriUnreachableException)",
    )
    parser.add_argument(
        "--account",
        type=_account,
        action="extend",
        nargs="+",
        default=[],
        metavar="ACCESS_KEY_ID=ACCOUNT_ID",
        help="requests signed with ACCESS_KEY_ID act in ACCOUNT_ID (12 digits); other keys act in 000000000000",
    )
    parser.add_argument(
        "--deny-role",
        action="extend",
        nargs="+",
        default=[],
        metavar="ROLE_ARN",
        help="answer sts:AssumeRole of ROLE_ARN with AccessDenied",
    )
    parser.add_argument(
        "--session-seconds",
        type=_positive,
        default=None,
        help="the longest session sts:AssumeRole issues, to watch clients refresh them (default: as asked)",
    )
    parser.add_argument(
        "--deny",
        action="extend",
        nargs="+",
        default=[],
        metavar="OPERATION",
        help="answer every request of OPERATION (e.g. ListKeys) with AccessDeniedException, as IAM answers a "
        "caller whose policies do not allow kms:OPERATION",
    )
    parser.add_argument("--request-timeout", type=_non_negative, default=10.0, help="socket timeout, seconds (10)")
    parser.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; the exit status."""
    args = build_parser().parse_args(argv)
    try:
        emulator = Emulator(
            connect_seconds=args.connect_seconds,
            disconnect_seconds=args.disconnect_seconds,
            state_file=args.state_file,
            seed=args.seed,
            store_limit=args.store_limit,
            throttle_rps=args.throttle_rps or None,
            consistency_lag=args.consistency_lag,
            host=args.host,
            port=args.port,
            fail_next=args.fail_next,
            failure_rate=args.failure_rate,
            failure_seed=args.failure_seed,
            default_connect_outcome=args.default_connect_outcome,
            connect_outcomes=dict(args.connect_outcome),
            store_drills=dict(args.drill_store),
            next_drills=args.drill_next,
            request_timeout=args.request_timeout,
            log=None if args.quiet else _log,
            accounts=dict(args.account),
            denied_roles=args.deny_role,
            session_seconds=args.session_seconds,
            key_limit=args.key_limit,
            denied_operations=args.deny,
        )
    except (EmulatorStateError, EmulatorConfigError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr, flush=True)
        return 2
    except OSError as error:
        print(f"{PROGRAM}: error: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(emulator.endpoint_url, flush=True)
    _log(f"listening on {emulator.endpoint_url} (state file: {args.state_file or 'none, in memory'})")
    try:
        # A timed wait, so the main thread wakes up to run the signal handler promptly.
        while not stop.wait(0.2):
            pass
    finally:
        try:
            emulator.stop()
        except OSError as error:
            print(f"{PROGRAM}: error: cannot save the state file: {error}", file=sys.stderr, flush=True)
            return 1
    _log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
