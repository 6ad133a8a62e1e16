"""``python -m neuroflow`` (and ``torchrun -m neuroflow``) runs the command line."""

import sys

from neuroflow.cli import main

if __name__ == "__main__":
    sys.exit(main())
