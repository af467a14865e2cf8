"""The web app (``envsound serve``): a page that classifies a sound and a REST API over
:mod:`envsound.inference.api`. It imports only the inference stage."""
