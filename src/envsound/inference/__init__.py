"""inference stage of envsound."""
