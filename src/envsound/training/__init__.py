"""training stage of envsound."""
