import sys

from fastdec.cli.main import main

sys.exit(main())
