"""The memorisation experiment's figures by name: what rule memorisation_figures writes (a PNG and
a PDF each) and :mod:`hw5repro.figures` draws. A module of its own so that the Snakefile reads
the names without importing matplotlib and seaborn (about a third of a second at every start).
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
