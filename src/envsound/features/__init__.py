"""features stage of envsound."""
