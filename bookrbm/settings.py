"""Training settings, presets and their checks, kept apart from the trainer so that the CLI
can show them, and refuse a bad one at once, without importing TensorFlow (4 s)."""
from . import kernel
from .errors import InputError, check_range, option

# The original write-up: 64 hidden units, 60 epochs, batches of 100, step 0.6, CD-1 on
# rating / 5, zero visible biases, no momentum or weight decay.
WRITEUP = {
    "hidden": 64,
    "epochs": 60,
    "batch_size": 100,
    "learning_rate": 0.6,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "cd_steps": 1,
    "sample_visible": False,
    "hidden_keep": 1.0,
    "average": 0.0,
    "input": "rating",
    "visible_bias": "zero",
    "eval_every": 0,
    "patience": 0,
    "short_lists": 0.0,
    "short_list_books": 20,
    "series_units": False,
    "series_keep": 1.0,
    "step": "graph",
}

# Chosen on the tuning users of the bundled sample (README, "How good are the
# recommendations?"; bench/tune_rbm.py reruns the search): read/unread input with visible
# biases started at the books' read rates, 1024 hidden units trained as a dropout RBM, a
# smaller step with momentum and a little weight decay, early stopping on the tuning
# users' NDCG@10, and a fifth of each batch's readers cut to short lists (1 to 20 of their
# books) so that it also learns what a reader who lists a few books has read; and one more
# hidden unit per book series (bookrbm/series.py), each left out of half the readers'
# updates, so that the ordinary hidden units learn series as well.
DEFAULT = {
    **WRITEUP,
    "hidden": 1024,
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 0.0003,
    "hidden_keep": 0.5,
    "average": 0.7,
    "input": "binary",
    "visible_bias": "logit",
    "eval_every": 5,
    "patience": 2,
    "short_lists": 0.2,
    "series_units": True,
    "series_keep": 0.5,
}

PRESETS = {"default": DEFAULT, "writeup": WRITEUP}
DEFAULTS = DEFAULT
INPUTS = ("rating", "binary")
VISIBLE_BIASES = ("zero", "logit")
# how a CD step is run: TensorFlow's ops, or one C++ kernel of our own (bookrbm/kernel.py)
STEPS = ("graph", "kernel")
# each number's allowed range (``errors.check_range``'s bounds)
RANGES = {
    "hidden": {"at_least": 1},
    "epochs": {"at_least": 1},
    "batch_size": {"at_least": 1},
    "cd_steps": {"at_least": 1},
    "short_list_books": {"at_least": 1},
    "learning_rate": {"above": 0},
    "momentum": {"at_least": 0, "below": 1},
    "average": {"at_least": 0, "below": 1},
    "hidden_keep": {"above": 0, "at_most": 1},
    "series_keep": {"above": 0, "at_most": 1},
    "short_lists": {"at_least": 0, "at_most": 1},
    "weight_decay": {"at_least": 0},
    "eval_every": {"at_least": 0},
    "patience": {"at_least": 0},
}


def check_settings(settings):
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise InputError(f"unknown setting {', '.join(sorted(unknown))}")
    for name, bounds in RANGES.items():
        check_range(option(name), settings[name], **bounds)
    if settings["patience"] and not settings["eval_every"]:
        raise InputError("--patience needs --eval-every: early stopping watches the tuning NDCG")
    if settings["input"] not in INPUTS:
        raise InputError(f"--input must be one of {', '.join(INPUTS)}, not {settings['input']!r}")
    if not isinstance(settings["series_units"], bool):
        raise InputError(f"series_units must be True or False, not {settings['series_units']!r}")
    if settings["visible_bias"] not in VISIBLE_BIASES:
        raise InputError(f"--visible-bias must be one of {', '.join(VISIBLE_BIASES)}, not {settings['visible_bias']!r}")
    if settings["step"] not in STEPS:
        raise InputError(f"--step must be one of {', '.join(STEPS)}, not {settings['step']!r}")
    if settings["step"] == "kernel":
        kernel.check_settings(settings)
