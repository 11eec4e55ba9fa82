"""``python -m scaling.cnn``: the digits width-sweep demo (see ``--help``)."""

from scaling.cnn._cnn import _main

raise SystemExit(_main())
