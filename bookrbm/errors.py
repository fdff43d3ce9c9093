"""User-facing errors: one line, exit code 2, no traceback."""
import functools
import sys

EXIT_BAD_INPUT = 2


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
