"""features stage of envsound. Importing it registers the built-in log-mel frontends' modules with the config's
registry (:mod:`envsound.features.frontends`)."""

from envsound.features.frontends import register_builtin_frontends

register_builtin_frontends()
