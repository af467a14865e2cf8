"""Datasets as small manifests of clip records (see :mod:`envsound.data.records`)."""
