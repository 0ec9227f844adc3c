"""``python -m fleet …`` (run from the pack's folder)."""
import sys

from .cli import main

sys.exit(main())
