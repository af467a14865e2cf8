"""cli stage of envsound."""
