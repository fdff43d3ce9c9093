"""User-facing errors: one line, exit code 2, no traceback."""
import functools
import sys

EXIT_BAD_INPUT = 2
MAX_SEED = 2**31 - 1  # NumPy takes any seed from 0; TensorFlow's op seeds (seed + k) must stay in int64


class InputError(Exception):
    """Bad input that the user can fix; the message is shown as is, on one line."""


def cli(main):
    """Wrap a script's ``main`` so an ``InputError`` becomes one line on stderr and exit 2."""

    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        except InputError as error:
            message = " ".join(str(error).split())
            print(f"error: {message}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return run


def seed_option(text):
    """argparse ``type`` of every script's --seed: a whole number from 0 to ``MAX_SEED``.

    Raises InputError (not argparse's error) so that ``cli`` reports it in one line."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise InputError(f"--seed must be a whole number from 0 to {MAX_SEED}, not {text}")
    return value
