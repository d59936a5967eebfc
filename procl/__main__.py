import sys

from procl.cli import main

sys.exit(main())
