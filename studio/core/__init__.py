"""The Qt-free core: models, recipes, hardware probe, measurement, the comparison run and its results."""
