"""Shared test factories: tiny files, models, datasets, configs and priors (tests import these, not each
other)."""
