"""Training settings, kept apart from the trainer so the CLI can show them without TensorFlow."""

# The original write-up's settings: 64 hidden units, 60 epochs, batches of 100, step 0.6.
DEFAULTS = {"hidden": 64, "epochs": 60, "batch_size": 100, "learning_rate": 0.6}
