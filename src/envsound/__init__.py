"""envsound: environmental sound classification.

Data flows one way: audio -> data -> features -> models -> training -> evaluation -> inference -> cli.
Nothing is read, downloaded or configured at import time.
"""

__version__ = "0.1.0"
