import sys

from localservers.services import main

sys.exit(main(sys.argv[1:]))
