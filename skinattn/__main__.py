import sys

from skinattn.cli import main

sys.exit(main())
