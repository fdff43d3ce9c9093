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


def option(name):
    """The command-line option of a setting or argument's name: ``batch_size`` → ``--batch-size``."""
    return "--" + name.replace("_", "-")


def check_range(option, value, *, at_least=None, above=None, at_most=None, below=None):
    """``value`` if it is within the bounds given, else an InputError that names ``option``
    (as the user types it: "--top"), the range in words and the value. NaN is never within."""
    within = all((
        at_least is None or value >= at_least, above is None or value > above,
        at_most is None or value <= at_most, below is None or value < below,
    ))
    if within:
        return value
    if at_least is not None and at_most is not None:
        words = f"be from {at_least} to {at_most}"
    elif at_least == 0 and at_most is None and below is None:
        words = "not be negative"
    else:
        lower = f"at least {at_least}" if at_least is not None else None if above is None else f"above {above}"
        upper = f"at most {at_most}" if at_most is not None else None if below is None else f"below {below}"
        words = "be " + " and ".join(bound for bound in (lower, upper) if bound is not None)
    raise InputError(f"{option} must {words}, not {value}")


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
