"""Training one run of problem 6: settings, the model, the loop, checkpoints and the job."""
