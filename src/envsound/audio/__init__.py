"""audio stage of envsound."""
