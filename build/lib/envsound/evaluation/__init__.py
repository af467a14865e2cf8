"""evaluation stage of envsound."""
