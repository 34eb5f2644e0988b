"""The memorisation experiment's figures by name (PNG and PDF each), in a module of its own so
that the Snakefile reads them without importing matplotlib and seaborn.
"""

FIGURES = (
    "train_loss",
    "train_accuracy",
    "random_labels_curves",
    "training_time",
    "test_error",
    "time_to_fit",
    "generalisation_gap",
    "clean_vs_mislabelled",
    "zhang_figure1",
)
