"""The data of problem 6: MNIST, its corruptions and the grid of training runs."""
