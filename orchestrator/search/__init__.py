"""``search:``: an Optuna search over a space of training configs, each trial
an xorch run, then the seed study of the best config (``driver.launch_search``)."""
