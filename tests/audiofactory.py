"""``import audiofactory``, as the tests have written it, is benchmarks/support/audiofactory.py (moved there in issue
74 so that the benchmarks share it without importing a test module): one module, not a copy, so what a test sets on
it is set there."""

import sys

from benchmarks.support import audiofactory

sys.modules[__name__] = audiofactory
