"""``python -m scaling.teacher_student``: the reproduction (same as ``idest reproduce``)."""

import sys

from idest.cli import main

raise SystemExit(main(["reproduce", *sys.argv[1:]]))
