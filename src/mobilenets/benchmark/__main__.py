"""`python -m mobilenets.benchmark --worker JSON`: one measurement in a fresh process."""

import sys

from mobilenets.benchmark.measure import worker

if sys.argv[1:2] == ["--worker"]:
    worker()
