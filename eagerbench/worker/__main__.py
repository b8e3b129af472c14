"""``python -m eagerbench.worker``: a worker process (``main``)."""

import sys

from eagerbench.worker.main import main

sys.exit(main())
