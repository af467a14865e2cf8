"""models stage of envsound."""
