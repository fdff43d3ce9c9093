"""Book recommendations from goodbooks-10k ratings with a Restricted Boltzmann Machine.

Importing the package is cheap: nothing here imports TensorFlow. Only
``bookrbm.graph`` and ``bookrbm.train`` do, so ``recommend.py`` starts fast.
"""
