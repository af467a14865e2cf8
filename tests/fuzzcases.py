"""``import fuzzcases``, as the tests have written it, is benchmarks/support/fuzzcases.py (moved there in issue
74 so that the benchmarks share it without importing a test module): one module, not a copy, so what a test sets on
it is set there."""

import sys

from benchmarks.support import fuzzcases

sys.modules[__name__] = fuzzcases
